"""Scan events as pydantic v2 models: a union discriminated on ``type``.

Every string and number is bounded, unknown fields are forbidden and timestamps must carry
an offset. The JSON Schemas in ``schemas/`` are generated from these models.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    field_validator,
)

CONTAINER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{2,63}$"
ContainerId = Annotated[
    str,
    Field(
        pattern=CONTAINER_ID_PATTERN,
        description="Opaque container barcode.",
        examples=["BX-000123"],
    ),
]
PARTY_ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{1,63}$"
PartyId = Annotated[str, Field(pattern=PARTY_ID_PATTERN, description="Registered party id.")]
LocationId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f]+$")]
Reference = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f]+$")]
WeightKg = Annotated[float, Field(gt=0, le=100_000, allow_inf_nan=False)]
# PostgreSQL stores no U+0000 in text or jsonb; everything else is free.
NO_NUL = r"^[^\x00]*$"
Timestamp = Annotated[
    AwareDatetime, Field(description="RFC 3339 date-time with a UTC offset; naive times rejected.")
]


class Chemistry(StrEnum):
    LI_ION = "li_ion"
    LI_METAL = "li_metal"
    NIMH = "nimh"
    NICD = "nicd"
    LEAD_ACID = "lead_acid"
    ALKALINE = "alkaline"
    MIXED = "mixed"


class DDR(StrEnum):
    DAMAGED = "damaged"
    DEFECTIVE = "defective"
    RECALLED = "recalled"


class Condition(StrEnum):
    OK = "ok"
    DAMAGED = "damaged"
    DISCREPANCY = "discrepancy"
    REJECTED = "rejected"


class ProcessMethod(StrEnum):
    SHREDDING = "shredding"
    HYDROMET = "hydromet"
    PYROMET = "pyromet"
    OTHER = "other"


class IncidentKind(StrEnum):
    DAMAGED = "damaged"
    THERMAL_EVENT = "thermal_event"
    LEAK = "leak"
    MISSING = "missing"
    REJECTED = "rejected"


class CorrectionReason(StrEnum):
    DID_NOT_OCCUR = "did_not_occur"
    INCORRECT_DATA = "incorrect_data"


class EventType(StrEnum):
    DROPOFF = "dropoff"
    SEALED = "sealed"
    PICKUP = "pickup"
    HANDOFF = "handoff"
    INTAKE = "intake"
    RECEIPT_ACK = "receipt_ack"
    PROCESSED = "processed"
    INCIDENT = "incident"
    CORRECTION = "correction"


EVENT_TYPES: tuple[str, ...] = tuple(t.value for t in EventType)
TRANSFER_TYPES = frozenset({EventType.PICKUP, EventType.HANDOFF, EventType.INTAKE})


class _EventBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)

    event_id: UUID = Field(description="Client-made UUID; the idempotency key.")
    container_id: ContainerId
    occurred_at: Timestamp
    location_id: LocationId
    device_seq: Annotated[int, Field(ge=0, le=2**53)] | None = Field(
        default=None, description="Monotonic counter per device."
    )
    sent_at: Timestamp | None = None
    note: Annotated[str, Field(max_length=500, pattern=NO_NUL)] | None = None


class Dropoff(_EventBase):
    type: Literal["dropoff"]
    chemistry: Chemistry
    battery_count: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    weight_kg: WeightKg | None = None


class Sealed(_EventBase):
    type: Literal["sealed"]
    weight_kg: WeightKg
    un_numbers: Annotated[
        list[Annotated[str, Field(pattern=r"^UN\d{4}$")]], Field(min_length=1, max_length=16)
    ]
    ddr: list[DDR] = Field(default_factory=list, max_length=3)
    seal_id: Reference | None = None


class Pickup(_EventBase):
    type: Literal["pickup"]
    from_party: PartyId
    to_party: PartyId
    shipment_id: Reference
    destination_party: PartyId | None = None


class Handoff(_EventBase):
    type: Literal["handoff"]
    from_party: PartyId
    to_party: PartyId
    shipment_id: Reference | None = None


class Intake(_EventBase):
    type: Literal["intake"]
    from_party: PartyId
    to_party: PartyId
    weight_kg: WeightKg


class ReceiptAck(_EventBase):
    type: Literal["receipt_ack"]
    accepted_weight_kg: Annotated[float, Field(ge=0, le=100_000, allow_inf_nan=False)]
    condition: Condition
    plant_reference: Reference
    shipment_id: Reference | None = None


class Processed(_EventBase):
    type: Literal["processed"]
    method: ProcessMethod
    input_weight_kg: WeightKg | None = None


class Incident(_EventBase):
    type: Literal["incident"]
    kind: IncidentKind
    description: Annotated[str, Field(min_length=1, max_length=2000, pattern=NO_NUL)]


class Correction(_EventBase):
    type: Literal["correction"]
    corrects_event_id: UUID
    reason: CorrectionReason
    corrective_event_ids: Annotated[list[UUID], Field(max_length=16)] = Field(default_factory=list)

    @field_validator("corrective_event_ids")
    @classmethod
    def _distinct(cls, ids: list[UUID]) -> list[UUID]:
        if len(set(ids)) != len(ids):
            raise ValueError("corrective_event_ids must be distinct")
        return ids


ScanEvent = Annotated[
    Dropoff | Sealed | Pickup | Handoff | Intake | ReceiptAck | Processed | Incident | Correction,
    Field(discriminator="type"),
]
CustodyEvent = (
    Dropoff | Sealed | Pickup | Handoff | Intake | ReceiptAck | Processed | Incident | Correction
)

_EVENT_ADAPTER: TypeAdapter[CustodyEvent] = TypeAdapter(ScanEvent)


def parse_event(data: Any) -> CustodyEvent:
    """Validate one event (a dict or JSON bytes); raises pydantic.ValidationError."""
    if isinstance(data, bytes | str):
        return _EVENT_ADAPTER.validate_json(data)
    return _EVENT_ADAPTER.validate_python(data)


def event_body(event: CustodyEvent) -> dict[str, Any]:
    """The JSON form of an event that is hashed and stored: None fields left out."""
    return event.model_dump(mode="json", exclude_none=True)


def event_json_schema() -> dict[str, Any]:
    return _EVENT_ADAPTER.json_schema()


def parties_of(event: CustodyEvent) -> tuple[str, ...]:
    """Every party id an event names, for registry checks."""
    if isinstance(event, Pickup):
        names = [event.from_party, event.to_party]
        if event.destination_party:
            names.append(event.destination_party)
        return tuple(names)
    if isinstance(event, Handoff | Intake):
        return (event.from_party, event.to_party)
    return ()
