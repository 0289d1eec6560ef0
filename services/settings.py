"""Typed configuration, read from ``CUSTODY_*`` environment variables (and ``.env``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

Port = Annotated[int, Field(ge=1, le=65535)]
OpsPort = Annotated[int, Field(ge=0, le=65535, description="0 disables the ops endpoint.")]


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
    consumer_analyze_check_s: Annotated[float, Field(ge=0, le=86_400)] = Field(
        default=60.0,
        description="The longest the consumer goes between two checks of whether "
        "ledger.entries needs ANALYZE; it also checks once its own appends would pass "
        "autovacuum's threshold.",
    )

    ingest_host: str = "127.0.0.1"
    ingest_port: Port = 8000
    ledger_host: str = "127.0.0.1"
    ledger_port: Port = 8001
    ops_host: str = Field(
        default="127.0.0.1",
        description="Where the consumer, notifier and checkpointer serve /metrics and probes.",
    )
    consumer_ops_port: OpsPort = 8002
    notifier_ops_port: OpsPort = 8003
    checkpointer_ops_port: OpsPort = 8004
    shutdown_grace_s: Annotated[int, Field(ge=1, le=600)] = Field(
        default=20,
        description="How long the HTTP services wait for requests in flight on SIGTERM.",
    )
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    ingest_workers: Annotated[int, Field(ge=1, le=64)] = Field(
        default=2,
        description="Ingest worker processes sharing its port; they share rate limits and metrics.",
    )
    max_body_bytes: Annotated[int, Field(ge=1024)] = 1024 * 1024
    max_batch_events: Annotated[int, Field(ge=1, le=10_000)] = 500
    epcis_capture_max_events: Annotated[int, Field(ge=1, le=100_000)] = Field(
        default=10_000, description="GS1-EPCIS-Capture-Limit: events per POST /epcis/capture."
    )
    epcis_capture_max_bytes: Annotated[int, Field(ge=1024)] = Field(
        default=32 * 1024 * 1024,
        description="GS1-EPCIS-Capture-File-Size-Limit: bytes per POST /epcis/capture.",
    )
    produce_timeout_s: Annotated[float, Field(gt=0, le=120)] = 10.0
    registry_cache_s: Annotated[float, Field(ge=0, le=3600)] = 5.0
    rate_limit_per_device: Annotated[float, Field(ge=0)] = Field(
        default=1000.0,
        description="Events a second each device may post on average at ingest; 0 disables.",
    )
    rate_limit_burst: Annotated[int, Field(ge=1)] = Field(
        default=25_000,
        description="Events a device may post at once above that rate (≥ max_batch_events).",
    )
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
    witnesses: str = Field(
        default="",
        description=(
            "Witnesses that cosign each checkpoint (c2sp.org/tlog-witness), comma-separated "
            "'<verifier key> <submission URL>' pairs; empty: none."
        ),
    )
    witness_port: Port = 57380
    witness_name: str = Field(
        default="battery-custody.local/witness",
        pattern=r"^[^\s+]+$",
        description="The local stack's witness: its key name.",
    )
    witness_timeout_s: Annotated[float, Field(gt=0, le=60)] = 5.0
    witness_unready_after_s: Annotated[float, Field(gt=0)] = Field(
        default=300.0,
        description="The checkpointer is unready while a witness has not cosigned for this long.",
    )

    notifier_time_scale: Annotated[float, Field(gt=0, le=1000)] = Field(
        default=1.0,
        description="Multiplies the retry schedule and the Retry-After cap (tests: e.g. 0.001).",
    )
    notifier_jitter: Annotated[float, Field(ge=0, le=0.5)] = 0.1
    notifier_jitter_seed: str = Field(default="", description="Seeds the jitter when not empty.")
    notifier_timeout_s: Annotated[float, Field(gt=0, le=300)] = 10.0
    notifier_poll_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    notifier_concurrency: Annotated[int, Field(ge=1, le=64)] = 4

    var_dir: Path = Path("var")
    cache_dir: Path = Path.home() / ".cache" / "battery-custody"
    kafka_port: Port = 59092
    kafka_controller_port: Port = 59093
    kafka_heap_mb: Annotated[int, Field(ge=128)] = 512
    postgres_port: Port = 55432


def settings_environment(settings: Settings, base: dict[str, str]) -> dict[str, str]:
    """``base`` without CUSTODY_* variables, plus ``settings`` as CUSTODY_* variables."""
    environment = {key: value for key, value in base.items() if not key.startswith("CUSTODY_")}
    for name, value in settings.model_dump().items():
        environment[f"CUSTODY_{name.upper()}"] = str(value)
    return environment


def configuration_problems(error: ValidationError) -> list[str]:
    """One ``CUSTODY_NAME: message`` line per invalid setting (input values are left out)."""
    problems = []
    for item in error.errors(include_input=False, include_url=False):
        name = "_".join(str(part) for part in item["loc"]).upper()
        problems.append(f"CUSTODY_{name}: {item['msg']}" if name else item["msg"])
    return problems


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
