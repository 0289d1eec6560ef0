"""Mass balance over a time window, from the containers' report facts (pure; docs/reports.md).

Only *effective* events count: a corrected event, a correction not in force and an event after
the container was processed (``after_terminal``) are left out. The facts are read from the
ledger as recorded when the report is asked for, so a correction recorded later changes the
figures of an earlier window.

The window is half-open, ``[start, end)``: an instant ``t`` is in it when ``start <= t < end``,
compared as instants (offsets do not matter).

What a container contributes is its report facts (site, chemistry, plant, sealed weight and its
first pickup, intake and receipt: report_facts.py). Each figure uses the time of its own event:

- ``shipped_containers`` / ``sealed_kg``: containers whose **pickup** occurred in the window, and
  the sum of their sealed weights;
- ``taken_in_containers`` / ``intake_kg``: containers whose **intake** occurred in the window,
  and the sum of the intake ``weight_kg``;
- ``accepted_containers`` / ``accepted_kg``: containers whose **receipt_ack** occurred in the
  window, and the sum of ``accepted_weight_kg``;
- ``not_taken_in_containers`` / ``not_taken_in_kg``: containers shipped in the window with no
  intake before the window's end (still on the road then, or lost), and their sealed weight;
- ``containers``: the distinct containers counted in at least one of the figures above;
- ``discrepancies``: for each intake in the window, the intake weight against the sealed weight,
  and for each receipt in the window, the accepted weight against the sealed weight, when they
  differ by more than ``max(weight_tolerance_kg, sealed * weight_tolerance_pct / 100)`` — the
  same tolerance as the ``weight_discrepancy`` anomaly (``CustodyRules``); a container counted in
  any figure without a sealed weight is listed once as ``unsealed`` (it counts 0 kg shipped).

Groups put each container in exactly one group by its site, plant or chemistry (``None`` when
unknown), so the groups' figures add up to the totals.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from services.ledger.domain.custody import CustodyRules
from services.ledger.domain.report_facts import ContainerFacts, Step


class GroupBy(StrEnum):
    SITE = "site"
    PLANT = "plant"
    CHEMISTRY = "chemistry"


class DiscrepancyKind(StrEnum):
    INTAKE = "intake"  # intake weight vs sealed weight
    ACCEPTED = "accepted"  # receipt_ack accepted weight vs sealed weight
    UNSEALED = "unsealed"  # counted, but no sealed weight to compare with


@dataclass(frozen=True)
class Window:
    """The half-open interval ``[start, end)`` of instants."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        for moment in (self.start, self.end):
            if moment.tzinfo is None or moment.utcoffset() is None:
                raise ValueError("window bounds must carry a UTC offset")
        if not self.start < self.end:
            raise ValueError("the window must start before it ends")

    def __contains__(self, moment: object) -> bool:
        if not isinstance(moment, datetime):
            return False
        return self.start <= moment < self.end


def weight_limit(sealed_kg: float, rules: CustodyRules) -> float:
    """The largest difference from the sealed weight that is not a discrepancy."""
    return max(rules.weight_tolerance_kg, sealed_kg * rules.weight_tolerance_pct / 100)


# --- the report -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Discrepancy:
    container_id: str
    kind: DiscrepancyKind
    event_id: str | None
    occurred_at: datetime | None
    sealed_kg: float | None
    weight_kg: float | None
    difference_kg: float | None  # weight - sealed (negative: lighter than sealed)
    limit_kg: float | None


@dataclass(frozen=True)
class Figures:
    key: str | None  # the group (site, plant or chemistry); None for totals or unknown
    containers: int
    shipped_containers: int
    sealed_kg: float
    taken_in_containers: int
    intake_kg: float
    accepted_containers: int
    accepted_kg: float
    not_taken_in_containers: int
    not_taken_in_kg: float
    discrepancies: tuple[Discrepancy, ...]


@dataclass(frozen=True)
class MassBalance:
    window: Window
    group_by: GroupBy | None
    rules: CustodyRules
    groups: tuple[Figures, ...]  # by key, unknown (None) last; empty without group_by
    totals: Figures


@dataclass(frozen=True)
class _Contribution:
    facts: ContainerFacts
    shipped_kg: float | None  # None: not shipped in the window
    intake_kg: float | None
    accepted_kg: float | None
    not_taken_in_kg: float | None
    discrepancies: tuple[Discrepancy, ...]


def _compare(
    facts: ContainerFacts, kind: DiscrepancyKind, step: Step, weight: float, rules: CustodyRules
) -> Discrepancy | None:
    sealed = facts.sealed_kg
    if sealed is None:
        return None
    limit = weight_limit(sealed, rules)
    difference = weight - sealed
    if abs(difference) <= limit:
        return None
    return Discrepancy(
        facts.container_id,
        kind,
        step.event_id,
        step.at,
        sealed,
        weight,
        difference,
        limit,
    )


def _contribution(
    facts: ContainerFacts, window: Window, rules: CustodyRules
) -> _Contribution | None:
    sealed = facts.sealed_kg
    shipped = facts.pickup is not None and facts.pickup.at in window
    taken_in = facts.intake is not None and facts.intake.at in window
    accepted = facts.receipt is not None and facts.receipt.at in window
    if not (shipped or taken_in or accepted):
        return None
    found: list[Discrepancy | None] = []
    if sealed is None:
        found.append(
            Discrepancy(
                facts.container_id, DiscrepancyKind.UNSEALED, None, None, None, None, None, None
            )
        )
    intake_kg = accepted_kg = None
    if taken_in and facts.intake is not None:
        intake_kg = facts.intake.weight_kg
        found.append(_compare(facts, DiscrepancyKind.INTAKE, facts.intake, intake_kg, rules))
    if accepted and facts.receipt is not None:
        accepted_kg = facts.receipt.accepted_weight_kg
        found.append(_compare(facts, DiscrepancyKind.ACCEPTED, facts.receipt, accepted_kg, rules))
    not_taken_in = shipped and (facts.intake is None or facts.intake.at >= window.end)
    return _Contribution(
        facts,
        shipped_kg=(sealed or 0.0) if shipped else None,
        intake_kg=intake_kg,
        accepted_kg=accepted_kg,
        not_taken_in_kg=(sealed or 0.0) if not_taken_in else None,
        discrepancies=tuple(item for item in found if item is not None),
    )


def _discrepancy_order(item: Discrepancy) -> tuple[datetime, str, str]:
    return (
        item.occurred_at or datetime.min.replace(tzinfo=UTC),
        item.container_id,
        item.kind.value,
    )


def _figures(key: str | None, contributions: list[_Contribution]) -> Figures:
    def total(values: Iterable[float | None]) -> tuple[int, float]:
        counted = [value for value in values if value is not None]
        return len(counted), math.fsum(counted)

    shipped, sealed_kg = total(c.shipped_kg for c in contributions)
    taken_in, intake_kg = total(c.intake_kg for c in contributions)
    accepted, accepted_kg = total(c.accepted_kg for c in contributions)
    open_count, open_kg = total(c.not_taken_in_kg for c in contributions)
    discrepancies = sorted(
        (item for c in contributions for item in c.discrepancies), key=_discrepancy_order
    )
    return Figures(
        key=key,
        containers=len(contributions),
        shipped_containers=shipped,
        sealed_kg=sealed_kg,
        taken_in_containers=taken_in,
        intake_kg=intake_kg,
        accepted_containers=accepted,
        accepted_kg=accepted_kg,
        not_taken_in_containers=open_count,
        not_taken_in_kg=open_kg,
        discrepancies=tuple(discrepancies),
    )


def group_key(facts: ContainerFacts, group_by: GroupBy) -> str | None:
    if group_by is GroupBy.SITE:
        return facts.site
    if group_by is GroupBy.PLANT:
        return facts.plant
    return facts.chemistry


def mass_balance(
    facts: Iterable[ContainerFacts],
    window: Window,
    *,
    group_by: GroupBy | None = None,
    rules: CustodyRules = CustodyRules(),
) -> MassBalance:
    """Shipped vs taken in vs accepted weight in ``window``, per group and in total."""
    contributions = [
        contribution
        for item in facts
        if (contribution := _contribution(item, window, rules)) is not None
    ]
    contributions.sort(key=lambda c: c.facts.container_id)
    groups: tuple[Figures, ...] = ()
    if group_by is not None:
        grouped: dict[str | None, list[_Contribution]] = defaultdict(list)
        for contribution in contributions:
            grouped[group_key(contribution.facts, group_by)].append(contribution)
        keys = sorted(grouped, key=lambda key: (key is None, key or ""))
        groups = tuple(_figures(key, grouped[key]) for key in keys)
    return MassBalance(window, group_by, rules, groups, _figures(None, contributions))
