"""What ingest writes to Kafka: the event plus what only ingest may state about it."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from services.contract.events import ScanEvent


class OriginKind(StrEnum):
    DEVICE = "device"
    WEBHOOK = "webhook"


class Origin(BaseModel):
    """The authenticated source, taken from the credential and never from the body."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: OriginKind
    party_id: Annotated[str, Field(min_length=1, max_length=64)]
    device_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None


class Envelope(BaseModel):
    """One Kafka message on ``custody.events`` (key = container_id)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = Field(default=1, ge=1, le=1)
    event: ScanEvent
    received_at: AwareDatetime
    origin: Origin
