"""What the reports read from one container's trail: its *report facts* (pure; docs/reports.md).

From the trail's effective events, in trail order:

- **site**: the party that posted its first dropoff (its first custodian);
- **chemistry**: the chemistry of its first dropoff;
- **plant**: the ``to_party`` of its first intake; until there is one, the ``destination_party``
  of its first pickup;
- **pickup**, **intake**, **receipt** (``receipt_ack``), **processed**: its first event of that
  type, with its event id, ledger seq, device time and the few fields the reports print;
- **sealed weight**: the ``weight_kg`` of the last ``sealed`` event before its first pickup (the
  weight it was shipped with); without a pickup, the last ``sealed`` event.

Facts depend only on the container's entries (not on the time of asking, the custody rules or
duplicate conflicts), so the read model stores them with the container, recomputed on every
append that touches it, and the mass balance and the shipment log read them instead of
reconstructing trails. ``facts_document`` and ``facts_from_document`` turn them into JSON and
back without loss.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.contract.events import Dropoff, Intake, Pickup, Processed, ReceiptAck, Sealed
from services.ledger.domain.custody import CustodyTrail


@dataclass(frozen=True, slots=True)
class Step:
    """One effective event the reports read."""

    event_id: str
    seq: int
    at: datetime  # the event's occurred_at


@dataclass(frozen=True, slots=True)
class PickupStep(Step):
    shipment_id: str
    to_party: str  # the hauler


@dataclass(frozen=True, slots=True)
class IntakeStep(Step):
    weight_kg: float


@dataclass(frozen=True, slots=True)
class ReceiptStep(Step):
    accepted_weight_kg: float
    condition: str


@dataclass(frozen=True, slots=True)
class ProcessedStep(Step):
    method: str


@dataclass(frozen=True, slots=True)
class ContainerFacts:
    container_id: str
    site: str | None
    chemistry: str | None
    plant: str | None
    sealed_kg: float | None
    pickup: PickupStep | None
    intake: IntakeStep | None
    receipt: ReceiptStep | None
    processed: ProcessedStep | None

    @property
    def shipment_id(self) -> str | None:
        return self.pickup.shipment_id if self.pickup is not None else None


def container_facts(trail: CustodyTrail) -> ContainerFacts:
    """The report facts of one container, in one pass over its trail."""
    dropoff: Dropoff | None = None
    site: str | None = None
    pickup: Pickup | None = None
    pickup_step: PickupStep | None = None
    intake: IntakeStep | None = None
    receipt: ReceiptStep | None = None
    processed: ProcessedStep | None = None
    plant: str | None = None
    sealed_before_pickup: float | None = None
    last_sealed: float | None = None
    # `type(event) is` rather than isinstance, which is slow on pydantic models (never subclassed)
    for item in trail.events:
        if not item.effective:
            continue
        entry = item.entry
        event = entry.event
        if type(event) is Sealed:
            last_sealed = event.weight_kg
            if pickup is None:
                sealed_before_pickup = event.weight_kg
        elif type(event) is Dropoff:
            if dropoff is None:
                dropoff, site = event, entry.origin.party_id
        elif type(event) is Pickup:
            if pickup is None:
                pickup = event
                pickup_step = PickupStep(
                    event_id=str(event.event_id),
                    seq=entry.seq,
                    at=event.occurred_at,
                    shipment_id=event.shipment_id,
                    to_party=event.to_party,
                )
        elif type(event) is Intake:
            if intake is None:
                plant = event.to_party
                intake = IntakeStep(
                    event_id=str(event.event_id),
                    seq=entry.seq,
                    at=event.occurred_at,
                    weight_kg=event.weight_kg,
                )
        elif type(event) is ReceiptAck:
            if receipt is None:
                receipt = ReceiptStep(
                    event_id=str(event.event_id),
                    seq=entry.seq,
                    at=event.occurred_at,
                    accepted_weight_kg=event.accepted_weight_kg,
                    condition=event.condition.value,
                )
        elif type(event) is Processed and processed is None:
            processed = ProcessedStep(
                event_id=str(event.event_id),
                seq=entry.seq,
                at=event.occurred_at,
                method=event.method.value,
            )
    if site is None and trail.intervals:
        site = trail.intervals[0].custodian
    if plant is None and pickup is not None:
        plant = pickup.destination_party
    return ContainerFacts(
        container_id=trail.container_id,
        site=site,
        chemistry=dropoff.chemistry.value if dropoff is not None else None,
        plant=plant,
        sealed_kg=sealed_before_pickup if sealed_before_pickup is not None else last_sealed,
        pickup=pickup_step,
        intake=intake,
        receipt=receipt,
        processed=processed,
    )


# --- as JSON ----------------------------------------------------------------------------------


def _step(step: Step) -> dict[str, object]:
    return {"event_id": step.event_id, "seq": step.seq, "at": step.at.isoformat()}


def facts_document(facts: ContainerFacts) -> dict[str, object]:
    """The facts as a JSON object (without the container id, which keys it)."""
    pickup, intake, receipt, processed = facts.pickup, facts.intake, facts.receipt, facts.processed
    return {
        "site": facts.site,
        "chemistry": facts.chemistry,
        "plant": facts.plant,
        "sealed_kg": facts.sealed_kg,
        "pickup": None
        if pickup is None
        else {**_step(pickup), "shipment_id": pickup.shipment_id, "to_party": pickup.to_party},
        "intake": None if intake is None else {**_step(intake), "weight_kg": intake.weight_kg},
        "receipt": None
        if receipt is None
        else {
            **_step(receipt),
            "accepted_weight_kg": receipt.accepted_weight_kg,
            "condition": receipt.condition,
        },
        "processed": None
        if processed is None
        else {**_step(processed), "method": processed.method},
    }


def facts_from_document(container_id: str, document: Mapping[str, Any]) -> ContainerFacts:
    """The facts ``facts_document`` wrote, equal to the original."""
    sealed = document["sealed_kg"]
    pickup = document["pickup"]
    intake = document["intake"]
    receipt = document["receipt"]
    processed = document["processed"]
    return ContainerFacts(
        container_id=container_id,
        site=document["site"],
        chemistry=document["chemistry"],
        plant=document["plant"],
        sealed_kg=None if sealed is None else float(sealed),
        pickup=None
        if pickup is None
        else PickupStep(
            event_id=pickup["event_id"],
            seq=pickup["seq"],
            at=datetime.fromisoformat(pickup["at"]),
            shipment_id=pickup["shipment_id"],
            to_party=pickup["to_party"],
        ),
        intake=None
        if intake is None
        else IntakeStep(
            event_id=intake["event_id"],
            seq=intake["seq"],
            at=datetime.fromisoformat(intake["at"]),
            weight_kg=float(intake["weight_kg"]),
        ),
        receipt=None
        if receipt is None
        else ReceiptStep(
            event_id=receipt["event_id"],
            seq=receipt["seq"],
            at=datetime.fromisoformat(receipt["at"]),
            accepted_weight_kg=float(receipt["accepted_weight_kg"]),
            condition=receipt["condition"],
        ),
        processed=None
        if processed is None
        else ProcessedStep(
            event_id=processed["event_id"],
            seq=processed["seq"],
            at=datetime.fromisoformat(processed["at"]),
            method=processed["method"],
        ),
    )
