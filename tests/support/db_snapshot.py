"""Everything the database holds, as one comparable value: row counts and a digest per table."""

from __future__ import annotations

from sqlalchemy import create_engine, text

from services.settings import Settings


def database_snapshot(settings: Settings) -> dict[str, tuple[int, str]]:
    """Table → (rows, md5 of its rows in a stable order), read as the owner (every table)."""
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
                rows, digest = connection.execute(
                    text(
                        f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' "
                        f"ORDER BY t::text), '')) FROM {table} t"
                    )
                ).one()
                snapshot[table] = (int(rows), str(digest))
    finally:
        engine.dispose()
    return snapshot
