"""Run the Alembic migrations in ``migrations/`` as the database owner."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

PROJECT_ROOT = Path(__file__).resolve().parents[3]


def alembic_config(admin_url: str) -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", admin_url.replace("%", "%%"))
    return config


def upgrade(admin_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(admin_url), revision)
