"""Run the Alembic migrations (the only schema source) as the database owner.

The migrations are found in the checkout (``migrations/`` beside ``services/``), else where a
non-editable install put them (``<prefix>/share/battery-custody/migrations``), unless
``CUSTODY_MIGRATIONS_DIR`` names another folder.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS_DIR_ENV = "CUSTODY_MIGRATIONS_DIR"
_CHECKOUT = Path(__file__).resolve().parents[2] / "migrations"
_INSTALLED = Path(sys.prefix) / "share" / "battery-custody" / "migrations"


def migrations_dir() -> Path:
    named = os.environ.get(MIGRATIONS_DIR_ENV)
    candidates = [Path(named)] if named else [_CHECKOUT, _INSTALLED]
    for candidate in candidates:
        if (candidate / "env.py").is_file():
            return candidate
    raise FileNotFoundError(
        f"no Alembic migrations in {' or '.join(map(str, candidates))}; "
        f"set {MIGRATIONS_DIR_ENV} to the folder holding env.py and versions/"
    )


def alembic_config(admin_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.set_main_option("path_separator", "os")
    config.set_main_option("sqlalchemy.url", admin_url.replace("%", "%%"))
    return config


def upgrade(admin_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(admin_url), revision)
