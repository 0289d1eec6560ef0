"""EPCIS capture jobs in PostgreSQL (``ingest.capture_jobs``, migration 0009)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Engine,
    Integer,
    MetaData,
    Table,
    Text,
    Uuid,
    insert,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB

from services.ingest.domain.capture_job import CaptureJob, EventErrors

capture_jobs = Table(
    "capture_jobs",
    MetaData(),
    Column("capture_id", Uuid, primary_key=True),
    Column("party_id", Text, nullable=False),
    Column("device_id", Text, nullable=False),
    Column("behaviour", Text, nullable=False),
    Column("events", Integer, nullable=False),
    Column("accepted", Integer, nullable=False),
    Column("success", Boolean, nullable=False),
    Column("errors", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=False),
    schema="ingest",
)


class PostgresCaptureJobs:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def record(self, job: CaptureJob) -> None:
        with self._engine.begin() as connection:
            connection.execute(
                insert(capture_jobs).values(
                    capture_id=job.capture_id,
                    party_id=job.party_id,
                    device_id=job.device_id,
                    behaviour=job.behaviour,
                    events=job.events,
                    accepted=job.accepted,
                    success=job.success,
                    errors=[item.as_json() for item in job.errors],
                    created_at=job.created_at,
                    finished_at=job.finished_at,
                )
            )

    def get(self, capture_id: uuid.UUID, party_id: str) -> CaptureJob | None:
        c = capture_jobs.c
        with self._engine.connect() as connection:
            row = (
                connection.execute(
                    select(capture_jobs).where(c.capture_id == capture_id, c.party_id == party_id)
                )
                .mappings()
                .first()
            )
        return None if row is None else _job(row)

    def recent(self, party_id: str, limit: int) -> list[CaptureJob]:
        c = capture_jobs.c
        with self._engine.connect() as connection:
            rows = (
                connection.execute(
                    select(capture_jobs)
                    .where(c.party_id == party_id)
                    .order_by(c.created_at.desc())
                    .limit(limit)
                )
                .mappings()
                .all()
            )
        return [_job(row) for row in rows]


def _job(row: Any) -> CaptureJob:
    return CaptureJob(
        capture_id=row["capture_id"],
        party_id=row["party_id"],
        device_id=row["device_id"],
        behaviour=row["behaviour"],
        events=row["events"],
        accepted=row["accepted"],
        errors=tuple(
            EventErrors(item["eventIndex"], item["eventID"], item["errors"])
            for item in row["errors"]
        ),
        created_at=row["created_at"],
        finished_at=row["finished_at"],
    )
