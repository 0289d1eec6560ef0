"""A throw-away Kafka broker and PostgreSQL cluster on free ports, for tests and benchmarks."""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text

from services.db.migrations import upgrade
from services.settings import Settings
from services.stack.kafka_broker import KafkaBroker, kafka_libs
from services.stack.postgres_cluster import PostgresCluster
from services.stack.processes import free_port
from services.stack.topics import ensure_topics

CACHE_DIR = Path(os.environ.get("CUSTODY_CACHE_DIR", Path.home() / ".cache" / "battery-custody"))


@dataclass(frozen=True)
class EphemeralStack:
    kafka: KafkaBroker
    postgres: PostgresCluster

    def new_database(self) -> tuple[str, str]:
        """A freshly migrated database; returns (app url, admin url)."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        admin = create_engine(self.postgres.url(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f"CREATE DATABASE {name}"))
        admin.dispose()
        admin_url = self.postgres.url(database=name)
        upgrade(admin_url)
        return self.postgres.url(user="custody_app", database=name), admin_url

    def settings(self, **overrides: object) -> Settings:
        """Settings on a fresh database and fresh topics, so users never see each other."""
        app_url, admin_url = self.new_database()
        suffix = uuid.uuid4().hex[:8]
        values: dict[str, object] = {
            "database_url": app_url,
            "admin_database_url": admin_url,
            "kafka_bootstrap": self.kafka.bootstrap,
            "topic": f"custody.events.{suffix}",
            "dlq_topic": f"custody.events.dlq.{suffix}",
            "consumer_group": f"custody-ledger-{suffix}",
            "registry_cache_s": 0.0,
            "consumer_poll_ms": 100,
            # Several stacks run side by side: whoever starts a worker picks its ops port.
            "consumer_ops_port": 0,
            "notifier_ops_port": 0,
            "checkpointer_ops_port": 0,
        }
        values.update(overrides)
        settings = Settings.model_validate(values)
        ensure_topics(
            self.kafka.bootstrap,
            {settings.topic: settings.topic_partitions, settings.dlq_topic: 1},
        )
        return settings


def start_ephemeral_stack(prefix: str = "custody-test-") -> tuple[EphemeralStack, Path]:
    """Start both servers in a new temporary folder; the caller stops them and removes it."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(0o755)
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        (root / "postgres").mkdir()
        os.chown(root / "postgres", entry.pw_uid, entry.pw_gid)
    postgres = PostgresCluster(data_dir=root / "postgres", port=free_port())
    kafka = KafkaBroker(
        home=root / "kafka",
        port=free_port(),
        controller_port=free_port(),
        libs=kafka_libs(CACHE_DIR),
        heap_mb=512,
    )
    postgres.start()
    kafka.start()
    return EphemeralStack(kafka=kafka, postgres=postgres), root


def stop_ephemeral_stack(stack: EphemeralStack, root: Path) -> None:
    stack.kafka.stop()
    stack.postgres.stop(mode="immediate")
    shutil.rmtree(root, ignore_errors=True)
