"""Everything the database holds, as one comparable value: row counts and a digest per table."""

from __future__ import annotations

from sqlalchemy import create_engine, text

from services.settings import Settings

#: Bookkeeping, not data: when a token was last used (refreshed by every look-up).
USAGE_COLUMNS = {"registry.api_tokens": "last_used_at", "registry.devices": "last_used_at"}


def database_snapshot(settings: Settings) -> dict[str, tuple[int, str]]:
    """Table → (rows, md5 of its rows in a stable order), read as the owner (every table),
    tokens' last use left out."""
    engine = create_engine(settings.admin_database_url)
    snapshot: dict[str, tuple[int, str]] = {}
    try:
        with engine.connect() as connection:
            tables = connection.execute(
                text(
                    "SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) "
                    "FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
                    "AND table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1"
                )
            ).scalars()
            for table in list(tables):
                row = "t::text"
                if table in USAGE_COLUMNS:
                    row = f"(to_jsonb(t) - '{USAGE_COLUMNS[table]}')::text"
                rows, digest = connection.execute(
                    text(
                        f"SELECT count(*), md5(coalesce(string_agg({row}, '|' "
                        f"ORDER BY {row}), '')) FROM {table} t"
                    )
                ).one()
                snapshot[table] = (int(rows), str(digest))
    finally:
        engine.dispose()
    return snapshot
