"""Create the custody topics once the broker answers."""

from __future__ import annotations

import contextlib
import time

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from services.stack.processes import StackError


def ensure_topics(bootstrap: str, topics: dict[str, int], *, timeout: float = 60.0) -> None:
    """Create each ``name: partitions`` topic that does not exist; wait for the broker."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            admin = KafkaAdminClient(
                bootstrap_servers=bootstrap, client_id="custody-stack", request_timeout_ms=10_000
            )
        except KafkaError as error:
            last_error = error
            time.sleep(0.2)
            continue
        try:
            existing = set(admin.list_topics())
            missing = [
                NewTopic(name=name, num_partitions=partitions, replication_factor=1)
                for name, partitions in topics.items()
                if name not in existing
            ]
            if missing:
                with contextlib.suppress(TopicAlreadyExistsError):
                    admin.create_topics(missing)
            if set(topics) <= set(admin.list_topics()):
                return
        except KafkaError as error:
            last_error = error
            time.sleep(0.2)
        finally:
            admin.close()
    raise StackError(f"could not create Kafka topics {sorted(topics)}: {last_error}")
