"""SQLAlchemy Core views of the registry's tables (Alembic migrations are the only schema source).

Parties, devices, API tokens and plant webhook endpoints. Plant webhook secrets are read and
written with plain SQL in ``store.py``.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, DateTime, LargeBinary, MetaData, Table, Text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

metadata = MetaData()

parties = Table(
    "parties",
    metadata,
    Column("party_id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("jurisdiction", Text),
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
    Column("last_used_at", DateTime(timezone=True)),
    Column("previous_token_hash", LargeBinary),
    Column("previous_expires_at", DateTime(timezone=True)),
    schema="registry",
)


api_tokens = Table(
    "api_tokens",
    metadata,
    Column("token_id", Text, primary_key=True),
    Column("role", Text, nullable=False),
    Column("label", Text, nullable=False),
    Column("token_hash", LargeBinary, nullable=False),
    Column("party_id", Text),
    Column("scope_parties", ARRAY(Text), nullable=False),
    Column("scope_jurisdictions", ARRAY(Text), nullable=False),
    Column("created_at", DateTime(timezone=True)),
    Column("expires_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
    Column("last_used_at", DateTime(timezone=True)),
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


audit = Table(
    "audit",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("at", DateTime(timezone=True)),
    Column("actor", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("subject", Text, nullable=False),
    Column("before", JSONB),
    Column("after", JSONB),
    schema="registry",
)
"""Every registry change: append-only (migration 0011)."""
