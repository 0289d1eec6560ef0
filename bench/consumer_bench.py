"""Ledger consumer: the real consumer vs PostgreSQL COPY of the same rows vs a naive peer."""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime

import psycopg
from kafka import KafkaConsumer, KafkaProducer
from psycopg.types.json import Jsonb
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Integer,
    LargeBinary,
    Text,
    Uuid,
    create_engine,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Session

from bench.stats import Figure
from bench.workload import envelopes
from services.bootstrap import build_consumer
from services.ledger.consumer.decode import decode
from services.ledger.domain.messages import IncomingMessage
from services.settings import Settings
from services.stack.ephemeral import EphemeralStack


def produce(settings: Settings, messages: list[tuple[bytes, bytes]]) -> None:
    producer = KafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        linger_ms=5,
        batch_size=512 * 1024,
    )
    for key, value in messages:
        producer.send(settings.topic, key=key, value=value)
    producer.flush()
    producer.close()


def real_consumer_run(
    stack: EphemeralStack, messages: list[tuple[bytes, bytes]]
) -> tuple[float, Settings]:
    settings = stack.settings()
    produce(settings, messages)
    consumer = build_consumer(settings)
    started = time.perf_counter()
    while consumer.stats.appended < len(messages):
        consumer.run_once()
    elapsed = time.perf_counter() - started
    consumer.close()
    return len(messages) / elapsed, settings


def copy_run(settings: Settings) -> float:
    """COPY the rows the real consumer wrote into an identical table (indexes included)."""
    url = settings.admin_database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as connection:
        connection.execute("DROP TABLE IF EXISTS public.copy_target")
        connection.execute("CREATE TABLE public.copy_target (LIKE ledger.entries INCLUDING ALL)")
        rows = [
            tuple(Jsonb(value) if isinstance(value, dict) else value for value in row)
            for row in connection.execute("SELECT * FROM ledger.entries ORDER BY seq")
        ]
        connection.commit()
        started = time.perf_counter()
        with (
            connection.cursor() as cursor,
            cursor.copy("COPY public.copy_target FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)
        connection.commit()
        elapsed = time.perf_counter() - started
    return len(rows) / elapsed


class _Base(DeclarativeBase):
    pass


class NaiveEntry(_Base):
    __tablename__ = "naive_target"
    __table_args__ = {"schema": "public"}  # noqa: RUF012
    seq = Column(BigInteger, primary_key=True)
    event_id = Column(Uuid, nullable=False, unique=True)
    container_id = Column(Text, nullable=False)
    event_type = Column(Text, nullable=False)
    body = Column(JSONB, nullable=False)
    occurred_at = Column(DateTime(timezone=True), nullable=False)
    received_at = Column(DateTime(timezone=True), nullable=False)
    recorded_at = Column(DateTime(timezone=True), nullable=False)
    origin_party = Column(Text, nullable=False)
    kafka_partition = Column(Integer, nullable=False)
    kafka_offset = Column(BigInteger, nullable=False)
    entry_hash = Column(LargeBinary, nullable=False)


def naive_run(settings: Settings, count: int) -> float:
    """One decode, one ORM insert and one commit per event."""
    engine = create_engine(settings.admin_database_url)
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS public.naive_target"))
    _Base.metadata.create_all(engine)
    consumer = KafkaConsumer(
        settings.topic,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=f"naive-{time.time()}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    done = 0
    started = time.perf_counter()
    with Session(engine) as session:
        while done < count:
            for records in consumer.poll(timeout_ms=200, max_records=500).values():
                for record in records:
                    if done >= count:
                        break
                    decoded = decode(
                        IncomingMessage(
                            record.topic, record.partition, record.offset, record.key, record.value
                        )
                    )
                    event = decoded.envelope.event
                    session.add(
                        NaiveEntry(
                            seq=done,
                            event_id=event.event_id,
                            container_id=event.container_id,
                            event_type=event.type,
                            body=decoded.body,
                            occurred_at=event.occurred_at,
                            received_at=decoded.envelope.received_at,
                            recorded_at=datetime.now(UTC),
                            origin_party=decoded.envelope.origin.party_id,
                            kafka_partition=record.partition,
                            kafka_offset=record.offset,
                            entry_hash=hashlib.sha256(record.value).digest(),
                        )
                    )
                    session.commit()
                    done += 1
    elapsed = time.perf_counter() - started
    consumer.close()
    engine.dispose()
    return done / elapsed


def run(stack: EphemeralStack, *, events: int, runs: int, naive_events: int) -> list[Figure]:
    messages = envelopes(events // 5, prefix=f"BC{int(time.time())}")
    real, copy, naive = [], [], []
    for index in range(runs):
        rate, settings = real_consumer_run(stack, messages)
        real.append(rate)
        copy.append(copy_run(settings))
        naive.append(naive_run(settings, naive_events))
        print(
            f"  consumer run {index + 1}: real {rate:,.0f}/s, COPY {copy[-1]:,.0f}/s, "
            f"naive {naive[-1]:,.0f}/s",
            flush=True,
        )
    return [
        Figure(
            "ledger consumer vs COPY",
            "events/s",
            real,
            "PostgreSQL COPY of the same rows",
            copy,
            note=f"{len(messages):,} events/run; validation, hashing, Merkle, read model, offsets",
        ),
        Figure(
            "ledger consumer vs naive peer",
            "events/s",
            real,
            "naive: ORM insert + commit per event",
            naive,
            note=f"naive peer timed over {naive_events:,} events",
        ),
    ]
