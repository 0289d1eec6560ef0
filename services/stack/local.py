"""The local stack: one Kafka broker and one PostgreSQL cluster under the project's var/."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from services.db.migrations import upgrade
from services.ledger.adapters.signing_keys import create_key, load_verifier, verifier_path
from services.settings import Settings
from services.stack.kafka_broker import KafkaBroker, kafka_libs
from services.stack.postgres_cluster import PostgresCluster, reachable_by_postgres
from services.stack.service_processes import service_status, stop_services
from services.stack.topics import ensure_topics
from services.stack.witness import LocalWitness


@dataclass(frozen=True)
class LocalStack:
    kafka: KafkaBroker
    postgres: PostgresCluster
    witness: LocalWitness
    settings: Settings

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalStack:
        var_dir = settings.var_dir.resolve()
        return cls(
            kafka=KafkaBroker(
                home=var_dir / "kafka",
                port=settings.kafka_port,
                controller_port=settings.kafka_controller_port,
                libs=settings.cache_dir / "kafka-4.1.1" / "libs",
                heap_mb=settings.kafka_heap_mb,
                partitions=settings.topic_partitions,
            ),
            postgres=PostgresCluster(data_dir=postgres_home(var_dir), port=settings.postgres_port),
            witness=LocalWitness(
                home=var_dir / "witness",
                port=settings.witness_port,
                name=settings.witness_name,
                cache_root=settings.cache_dir,
            ),
            settings=settings,
        )

    def up(self) -> None:
        kafka_libs(self.settings.cache_dir)
        self.postgres.start()
        upgrade(self.postgres.url())
        self.kafka.start()
        ensure_topics(
            self.kafka.bootstrap,
            {self.settings.topic: self.settings.topic_partitions, self.settings.dlq_topic: 1},
        )
        key_file = self.settings.signing_key_file
        if not key_file.exists():
            create_key(key_file, self.settings.log_origin)
        self.witness.start(self.settings.log_origin, str(load_verifier(verifier_path(key_file))))

    def down(self) -> None:
        stop_services(self.settings)
        self.witness.stop()
        self.kafka.stop()
        self.postgres.stop()

    def status(self) -> dict[str, str]:
        kafka_pid = self.kafka.pid()
        return {
            **service_status(self.settings),
            "kafka": f"running (pid {kafka_pid}) on {self.kafka.bootstrap}"
            if kafka_pid
            else "stopped",
            "witness": f"running on {self.witness.url} ({self.witness.name})"
            if self.witness.running()
            else "stopped",
            "postgres": f"running on 127.0.0.1:{self.postgres.port} ({self.postgres.data_dir})"
            if self.postgres.running()
            else "stopped",
        }


def postgres_home(var_dir: Path) -> Path:
    """var/postgres when the server user can reach it; else a stable folder under /tmp."""
    preferred = var_dir / "postgres"
    var_dir.mkdir(parents=True, exist_ok=True)
    if reachable_by_postgres(var_dir):
        return preferred
    pointer = var_dir / "postgres.location"
    if pointer.exists():
        return Path(pointer.read_text().strip())
    home = Path(tempfile.mkdtemp(prefix="custody-pg-")) / "postgres"
    Path(home.parent).chmod(0o755)
    pointer.write_text(str(home))
    return home
