"""SQLAlchemy Core views of the registry's tables (Alembic migrations are the only schema source).

Parties, devices, API tokens and plant webhook endpoints. Plant webhook secrets are read and
written with plain SQL in ``store.py``.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, DateTime, LargeBinary, MetaData, Table, Text

metadata = MetaData()

parties = Table(
    "parties",
    metadata,
    Column("party_id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("created_at", DateTime(timezone=True)),
    schema="registry",
)


devices = Table(
    "devices",
    metadata,
    Column("device_id", Text, primary_key=True),
    Column("party_id", Text, nullable=False),
    Column("label", Text, nullable=False),
    Column("token_hash", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
    schema="registry",
)


api_tokens = Table(
    "api_tokens",
    metadata,
    Column("token_id", Text, primary_key=True),
    Column("role", Text, nullable=False),
    Column("label", Text, nullable=False),
    Column("token_hash", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
    schema="registry",
)


plant_endpoints = Table(
    "plant_endpoints",
    metadata,
    Column("party_id", Text, primary_key=True),
    Column("url", Text, nullable=False),
    Column("secret", Text, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("disabled_reason", Text),
    Column("created_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True)),
    schema="registry",
)
