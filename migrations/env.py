"""Alembic runs as the database owner (URL from the caller or CUSTODY_ADMIN_DATABASE_URL)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from services.settings import get_settings

url = context.config.get_main_option("sqlalchemy.url") or get_settings().admin_database_url
engine = create_engine(url)
with engine.connect() as connection:
    context.configure(connection=connection, version_table_schema="public")
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
