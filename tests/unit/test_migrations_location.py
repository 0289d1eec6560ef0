"""Where ``custody migrate`` finds the Alembic migrations: checkout, install, or a setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.db.migrations import MIGRATIONS_DIR_ENV, alembic_config, migrations_dir

CHECKOUT = Path(__file__).resolve().parents[2] / "migrations"


def test_a_checkout_uses_its_own_migrations(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MIGRATIONS_DIR_ENV, raising=False)
    assert migrations_dir() == CHECKOUT
    config = alembic_config("postgresql+psycopg://owner:p%40ss@127.0.0.1:1/custody")
    assert config.get_main_option("script_location") == str(CHECKOUT)
    assert (
        config.get_main_option("sqlalchemy.url")
        == "postgresql+psycopg://owner:p%40ss@127.0.0.1:1/custody"
    )


def test_the_setting_names_another_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "env.py").write_text("")
    monkeypatch.setenv(MIGRATIONS_DIR_ENV, str(tmp_path))
    assert migrations_dir() == tmp_path


def test_a_folder_without_migrations_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(MIGRATIONS_DIR_ENV, str(tmp_path))
    with pytest.raises(FileNotFoundError, match=f"{MIGRATIONS_DIR_ENV} to the folder"):
        migrations_dir()
