"""Typed configuration, read from ``CUSTODY_*`` environment variables (and ``.env``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

Port = Annotated[int, Field(ge=1, le=65535)]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CUSTODY_", env_file=".env", extra="ignore", frozen=True
    )

    database_url: str = "postgresql+psycopg://custody_app@127.0.0.1:55432/custody"
    admin_database_url: str = "postgresql+psycopg://postgres@127.0.0.1:55432/custody"
    kafka_bootstrap: str = "127.0.0.1:59092"
    topic: str = "custody.events"
    dlq_topic: str = "custody.events.dlq"
    topic_partitions: Annotated[int, Field(ge=1, le=1024)] = 6
    consumer_group: str = "custody-ledger"
    consumer_batch_max: Annotated[int, Field(ge=1, le=50_000)] = 2000
    consumer_poll_ms: Annotated[int, Field(ge=1, le=60_000)] = 200

    ingest_host: str = "127.0.0.1"
    ingest_port: Port = 8000
    ledger_host: str = "127.0.0.1"
    ledger_port: Port = 8001
    max_body_bytes: Annotated[int, Field(ge=1024)] = 1024 * 1024
    max_batch_events: Annotated[int, Field(ge=1, le=10_000)] = 500
    produce_timeout_s: Annotated[float, Field(gt=0, le=120)] = 10.0
    registry_cache_s: Annotated[float, Field(ge=0, le=3600)] = 5.0
    webhook_secret_grace_s: Annotated[float, Field(ge=0, le=30 * 86_400)] = Field(
        default=86_400.0,
        description="How long a plant's previous webhook secret stays valid after a rotation.",
    )

    weight_tolerance_kg: Annotated[float, Field(ge=0)] = 1.0
    weight_tolerance_pct: Annotated[float, Field(ge=0, le=100)] = 2.0

    log_origin: str = Field(
        default="battery-custody.local/ledger",
        pattern=r"^[^\s+]+$",
        description="Checkpoint origin line; also the signing key's name.",
    )
    signing_key_file: Path = Path("var/keys/checkpoint.key")
    checkpoint_interval_s: Annotated[float, Field(gt=0)] = 10.0
    checkpoint_entries: Annotated[int, Field(ge=1)] = 1000

    var_dir: Path = Path("var")
    cache_dir: Path = Path.home() / ".cache" / "battery-custody"
    kafka_port: Port = 59092
    kafka_controller_port: Port = 59093
    kafka_heap_mb: Annotated[int, Field(ge=128)] = 512
    postgres_port: Port = 55432


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
