"""A simulated recycling network and its upload plan (pure: no I/O, deterministic for a seed).

The network: collection sites, two haulers, a consolidation hub and two recycling plants, each
with one or two scanner devices. Every container lives through dropoffs at a site, sealing, a
pickup by a hauler (containers picked up together share a shipment id), for some shipments a leg
through the hub, intake at a plant and, for most, processing. Lives that started recently stop
early, so the plan leaves containers in every state a device can bring about.

Devices are offline: each keeps its scans and uploads them in batches at later sync times, the
order inside a batch shuffled; some syncs come after an outage (late uploads), a few batches are
sent twice (exact duplicates) and one site scanner's clock runs ten minutes fast. A handful of
real anomalies are planted and counted in the summary. Corrections form a final phase: ingest
accepts a correction only once the event it corrects is recorded by the ledger consumer.

Only the structure depends on the seed; the run id names containers, shipments, devices and
event ids, so two runs with the same seed never collide.
"""

from __future__ import annotations

import random
import re
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from services.contract.json_schemas import MAX_BATCH_EVENTS
from services.ledger.domain.custody import STATE_AFTER, ContainerState, CustodyRules
from services.registry.principals import PartyRole

CLOCK_OFFSET = timedelta(minutes=10)
"""How fast the skewed site scanner's clock runs."""
CLOCK_SKEW_LIMIT = CustodyRules().clock_skew
"""The ledger's rule: occurred_at more than this after received_at is ``clock_skew``."""
LATE_AFTER = CustodyRules().late_arrival
"""An upload is late when its oldest event occurred longer ago than this (``late_arrival``)."""

HUB_SHARE = 0.30
PROCESSED_SHARE = 0.85
INCIDENT_SHARE = 0.01
ANOMALY_SHARE = 0.01
CORRECTION_SHARE = 0.005
DUPLICATE_SHARE = 0.02

_RUN_ID = re.compile(r"^[a-z0-9]{1,16}$")
_EVENT_NAMESPACE = uuid.UUID("6f1c9a52-0d4e-4c55-9a57-1d3f0f6b8e21")
_HOUR = timedelta(hours=1)
_MINUTE = timedelta(minutes=1)

# Sync behaviour per role: hours between syncs (low, high), chance of an outage before a sync.
_SYNC: dict[PartyRole, tuple[float, float, float]] = {
    PartyRole.SITE: (2.0, 20.0, 0.08),
    PartyRole.HAULER: (1.0, 10.0, 0.06),
    PartyRole.HUB: (1.0, 6.0, 0.05),
    PartyRole.PLANT: (0.25, 3.0, 0.04),
}
_OUTAGE_HOURS = (26.0, 96.0)

_CHEMISTRIES = (("li_ion", 0.78), ("li_metal", 0.12), ("mixed", 0.10))
_METHODS = (("shredding", 0.55), ("hydromet", 0.30), ("pyromet", 0.15))

# The states a device can bring a container to, in order (acknowledged needs a plant webhook),
# and the event type (a scan's kind) that brings each.
STATES = tuple(state.value for state in ContainerState if state is not ContainerState.ACKNOWLEDGED)
_STATE_OF = {
    kind.value: state.value for kind, state in STATE_AFTER.items() if state.value in STATES
}


@dataclass(frozen=True)
class ScenarioConfig:
    run_id: str
    now: datetime
    containers: int = 300
    days: int = 30
    seed: int = 7
    sites: int = 6
    max_batch: int = MAX_BATCH_EVENTS

    def __post_init__(self) -> None:
        if not _RUN_ID.match(self.run_id):
            raise ValueError(f"run id {self.run_id!r} must be 1-16 lower-case letters or digits")
        if self.now.tzinfo is None or self.now.utcoffset() is None:
            raise ValueError("now must be an aware datetime")
        if not 1 <= self.containers <= 99_999:
            raise ValueError("containers must be between 1 and 99999")
        if not 1 <= self.days <= 365:
            raise ValueError("days must be between 1 and 365")
        if not 2 <= self.sites <= 99:
            raise ValueError("sites must be between 2 and 99")
        if not 1 <= self.max_batch <= MAX_BATCH_EVENTS:
            raise ValueError(f"max_batch must be between 1 and {MAX_BATCH_EVENTS}")


@dataclass(frozen=True)
class PartySpec:
    party_id: str
    name: str
    role: PartyRole


@dataclass(frozen=True)
class DeviceSpec:
    device_id: str
    party_id: str
    role: PartyRole
    label: str
    clock_offset: timedelta = timedelta(0)


@dataclass(frozen=True)
class Upload:
    """One sync of one device: the events it sends in one request, in the order sent."""

    device_id: str
    events: list[dict[str, Any]]
    at: datetime
    duplicate: bool = False
    late: bool = False
    correction: bool = False


@dataclass(frozen=True)
class ScenarioSummary:
    containers: int
    events: int
    events_to_post: int
    uploads: int
    duplicate_uploads: int
    duplicate_events: int
    late_uploads: int
    corrections: int
    shipments: int
    hub_shipments: int
    states: dict[str, int]
    expected_anomalies: dict[str, int]

    def rows(self) -> list[tuple[str, str]]:
        """Label and value pairs, for a table."""
        rows = [
            ("containers", str(self.containers)),
            ("distinct events", str(self.events)),
            ("events to post (with duplicates)", str(self.events_to_post)),
            ("uploads", str(self.uploads)),
            ("duplicate uploads (events)", f"{self.duplicate_uploads} ({self.duplicate_events})"),
            ("late uploads (> 24 h)", str(self.late_uploads)),
            ("corrections", str(self.corrections)),
            ("shipments (via hub)", f"{self.shipments} ({self.hub_shipments})"),
        ]
        rows += [(f"state {state}", str(count)) for state, count in self.states.items()]
        rows += [
            (f"expected anomaly {code}", str(count))
            for code, count in self.expected_anomalies.items()
        ]
        return rows


@dataclass(frozen=True)
class Scenario:
    config: ScenarioConfig
    parties: tuple[PartySpec, ...]
    devices: tuple[DeviceSpec, ...]
    uploads: tuple[Upload, ...]
    summary: ScenarioSummary
    skewed_device: str

    def device(self, device_id: str) -> DeviceSpec:
        for device in self.devices:
            if device.device_id == device_id:
                return device
        raise KeyError(device_id)


# --- building -----------------------------------------------------------------------------------


@dataclass
class _Scan:
    order: int
    true_at: datetime
    device: DeviceSpec
    kind: str
    container_id: str
    location_id: str
    fields: dict[str, Any]
    corrects: _Scan | None = None
    event_id: str = ""
    body: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Life:
    container_id: str
    site: str
    scans: list[_Scan] = field(default_factory=list)
    stopped: bool = False
    sealed_at: datetime | None = None
    sealed_weight: float = 0.0
    fresh: bool = False

    def last(self, kind: str) -> _Scan | None:
        for scan in reversed(self.scans):
            if scan.kind == kind:
                return scan
        return None


@dataclass
class _Shipment:
    site: str
    at: datetime
    lives: list[_Life] = field(default_factory=list)


def _stamp(moment: datetime) -> str:
    return moment.replace(microsecond=0).isoformat()


def _weighted(rng: random.Random, choices: tuple[tuple[str, float], ...]) -> str:
    return rng.choices([c for c, _ in choices], weights=[w for _, w in choices])[0]


def _hours(rng: random.Random, low: float, high: float) -> timedelta:
    return timedelta(hours=rng.uniform(low, high))


def _share(total: int, share: float) -> int:
    return max(1, round(total * share)) if total else 0


class _Builder:
    def __init__(self, config: ScenarioConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.now = config.now.astimezone(UTC)
        self.run = config.run_id
        self.order = 0
        self.parties: list[PartySpec] = []
        self.devices: dict[str, list[DeviceSpec]] = {}
        self.sites: list[str] = []
        self.haulers: list[str] = []
        self.hub = "hub-01"
        self.plants: list[str] = []
        self.skewed: DeviceSpec | None = None
        self.lives: list[_Life] = []
        self.corrections: list[_Scan] = []
        self.shipments = 0
        self.hub_shipments = 0
        self.mismatches = 0
        self.weight_discrepancies = 0

    # network

    def network(self) -> None:
        rng = self.rng
        self.sites = [f"site-{i:02d}" for i in range(1, self.config.sites + 1)]
        self.haulers = ["hauler-01", "hauler-02"]
        self.plants = ["plant-01", "plant-02"]
        skewed_site = rng.choice(self.sites)
        for site in self.sites:
            self._party(site, f"Collection point {site[-2:]}", PartyRole.SITE)
            count = 2 if rng.random() < 0.5 else 1
            for letter in "ab"[:count]:
                offset = CLOCK_OFFSET if site == skewed_site and letter == "a" else timedelta(0)
                device = self._device(site, PartyRole.SITE, letter, "handheld", offset)
                if offset:
                    self.skewed = device
        for hauler in self.haulers:
            self._party(hauler, f"Hauler {hauler[-2:]}", PartyRole.HAULER)
            for letter in "ab":
                self._device(hauler, PartyRole.HAULER, letter, "truck")
        self._party(self.hub, "Consolidation hub 01", PartyRole.HUB)
        for letter in "ab"[: 2 if rng.random() < 0.5 else 1]:
            self._device(self.hub, PartyRole.HUB, letter, "dock scanner")
        for plant in self.plants:
            self._party(plant, f"Recycling plant {plant[-2:]}", PartyRole.PLANT)
            self._device(plant, PartyRole.PLANT, "a", "gate")
            self._device(plant, PartyRole.PLANT, "b", "line")

    def _party(self, party_id: str, name: str, role: PartyRole) -> None:
        self.parties.append(PartySpec(party_id, name, role))
        self.devices[party_id] = []

    def _device(
        self,
        party_id: str,
        role: PartyRole,
        letter: str,
        label: str,
        offset: timedelta = timedelta(0),
    ) -> DeviceSpec:
        device = DeviceSpec(
            f"sim-{self.run}-{party_id}-{letter}", party_id, role, f"simulated {label}", offset
        )
        self.devices[party_id].append(device)
        return device

    # lives

    def _emit(
        self,
        life: _Life,
        at: datetime,
        device: DeviceSpec,
        event_type: str,
        location_id: str,
        **fields: Any,
    ) -> bool:
        """Record a scan unless the life stopped or the moment is still to come."""
        if life.stopped or at > self.now:
            life.stopped = True
            return False
        self.order += 1
        life.scans.append(
            _Scan(self.order, at, device, event_type, life.container_id, location_id, fields)
        )
        return True

    def lives_at_sites(self) -> None:
        rng, config = self.rng, self.config
        total = config.containers
        fresh = 0 if total < 2 else min(3, max(1, total // 100))
        window = timedelta(days=config.days)
        for index in range(1, total + 1):
            container_id = f"BX-{self.run}-{index:05d}"
            if index > total - fresh:
                self._fresh_life(container_id)
                continue
            site = rng.choice(self.sites)
            life = _Life(container_id, site)
            self.lives.append(life)
            chemistry = _weighted(rng, _CHEMISTRIES)
            weight = round(rng.uniform(20.0, 400.0), 1)
            content = weight - rng.uniform(6.0, 14.0)
            dropoffs = rng.randint(1, 3)
            parts = [rng.uniform(0.5, 1.5) for _ in range(dropoffs)]
            at = self.now - window * rng.random()
            location = f"{site}:dock"
            for number, part in enumerate(parts):
                if number:
                    at += _hours(rng, 1, 48)
                kg = round(content * part / sum(parts), 1)
                self._emit(
                    life,
                    at,
                    rng.choice(self.devices[site]),
                    "dropoff",
                    location,
                    chemistry=chemistry,
                    battery_count=max(1, int(kg / rng.uniform(0.05, 0.6))),
                    weight_kg=kg,
                )
            at += _hours(rng, 1, 24)
            roll = rng.random()
            ddr = ["damaged"] if roll < 0.06 else ["defective"] if roll < 0.08 else []
            if self._emit(
                life,
                at,
                rng.choice(self.devices[site]),
                "sealed",
                location,
                weight_kg=weight,
                un_numbers=self._un_numbers(chemistry),
                ddr=ddr,
                seal_id=f"SL-{self.run}-{index:05d}",
            ):
                life.sealed_at = at
                life.sealed_weight = weight

    def _fresh_life(self, container_id: str) -> None:
        """A dropoff seconds ago on the fast-clocked scanner: a clock_skew when sent promptly."""
        skewed = self.skewed
        assert skewed is not None
        life = _Life(container_id, skewed.party_id, fresh=True)
        self.lives.append(life)
        at = self.now - timedelta(seconds=self.rng.uniform(30, 90))
        self._emit(
            life,
            at,
            skewed,
            "dropoff",
            f"{skewed.party_id}:dock",
            chemistry="li_ion",
            battery_count=self.rng.randint(1, 40),
        )

    def _un_numbers(self, chemistry: str) -> list[str]:
        if chemistry == "li_ion":
            return ["UN3480"] if self.rng.random() < 0.8 else ["UN3481"]
        if chemistry == "li_metal":
            return ["UN3090"] if self.rng.random() < 0.8 else ["UN3091"]
        return ["UN3480", "UN3090"]

    def pickups(self) -> None:
        """Per site, pickup runs every 1.5-4.5 days collect every container sealed by then."""
        rng = self.rng
        window = timedelta(days=self.config.days)
        runs: list[_Shipment] = []
        for site in self.sites:
            at = self.now - window - _hours(rng, 0, 96)
            site_runs: list[_Shipment] = []
            while True:
                at += _hours(rng, 36, 108)
                if at > self.now:
                    break
                site_runs.append(_Shipment(site, at))
            waiting = sorted(
                (life for life in self.lives if life.site == site and life.sealed_at is not None),
                key=lambda life: (life.sealed_at, life.container_id),
            )
            for life in waiting:
                assert life.sealed_at is not None
                for run in site_runs:
                    if run.at >= life.sealed_at + _HOUR:
                        run.lives.append(life)
                        break
            runs.extend(run for run in site_runs if run.lives)
        runs.extend(self._recent_run(runs))
        runs.sort(key=lambda run: (run.at, run.site))
        for run in runs:
            self._ship(run)

    def _recent_run(self, runs: list[_Shipment]) -> list[_Shipment]:
        """One run shortly before now, so that some containers are on the road right now.

        It leaves at least one sealed container waiting somewhere.
        """
        at = self.now - _hours(self.rng, 0.5, 2.5)
        assigned = {id(life) for run in runs for life in run.lives}
        waiting = sorted(
            (
                life
                for life in self.lives
                if life.sealed_at is not None and id(life) not in assigned
            ),
            key=lambda life: (life.sealed_at, life.container_id),
        )
        ready = [life for life in waiting if life.sealed_at and life.sealed_at + _HOUR <= at]
        if not ready:
            return []
        site = self.rng.choice(ready).site
        load = [life for life in ready if life.site == site]
        if len(load) == len(waiting):
            load.pop()
        return [_Shipment(site, at, load)] if load else []

    def _ship(self, run: _Shipment) -> None:
        rng = self.rng
        self.shipments += 1
        shipment_id = f"SH-{self.run}-{self.shipments:04d}"
        hauler = rng.choice(self.haulers)
        truck = rng.choice(self.devices[hauler])
        onward_hauler = next(h for h in self.haulers if h != hauler)
        onward_truck = rng.choice(self.devices[onward_hauler])
        plant = rng.choice(self.plants)
        gate, line = self.devices[plant]
        via_hub = rng.random() < HUB_SHARE
        self.hub_shipments += via_hub
        to_hub, at_hub, last_leg = _hours(rng, 3, 8), _hours(rng, 12, 36), _hours(rng, 4, 16)
        direct = _hours(rng, 4, 20)
        offset = timedelta(0)
        for life in run.lives:
            offset += timedelta(minutes=rng.uniform(2, 6))
            start = run.at + offset
            if not self._emit(
                life,
                start,
                truck,
                "pickup",
                f"{run.site}:dock",
                from_party=run.site,
                to_party=hauler,
                shipment_id=shipment_id,
                destination_party=plant,
            ):
                continue
            last_holder = hauler
            arrival = start + direct
            if via_hub:
                hub_device = rng.choice(self.devices[self.hub])
                self._emit(
                    life,
                    start + to_hub,
                    hub_device,
                    "handoff",
                    f"{self.hub}:bay",
                    from_party=hauler,
                    to_party=self.hub,
                    shipment_id=shipment_id,
                )
                self._emit(
                    life,
                    start + to_hub + at_hub,
                    rng.choice([hub_device, onward_truck]),
                    "handoff",
                    f"{self.hub}:bay",
                    from_party=self.hub,
                    to_party=onward_hauler,
                    shipment_id=shipment_id,
                )
                last_holder = onward_hauler
                arrival = start + to_hub + at_hub + last_leg
            intake_kg = round(life.sealed_weight * (1 + rng.uniform(-0.004, 0.004)), 2)
            if not self._emit(
                life,
                arrival,
                gate,
                "intake",
                f"{plant}:gate",
                from_party=last_holder,
                to_party=plant,
                weight_kg=intake_kg,
            ):
                continue
            if rng.random() < INCIDENT_SHARE:
                self._emit(
                    life,
                    arrival + timedelta(minutes=rng.uniform(10, 90)),
                    gate,
                    "incident",
                    f"{plant}:gate",
                    kind="damaged",
                    description="Outer packaging dented on arrival; contents intact.",
                )
            if rng.random() < PROCESSED_SHARE:
                self._emit(
                    life,
                    arrival + _hours(rng, 12, 144),
                    line,
                    "processed",
                    f"{plant}:line",
                    method=_weighted(rng, _METHODS),
                    input_weight_kg=intake_kg,
                )

    # planted anomalies and corrections

    def anomalies(self) -> None:
        rng = self.rng
        total = self.config.containers
        picked = [life for life in self.lives if life.last("pickup") is not None]
        mismatched = rng.sample(picked, min(len(picked), _share(total, ANOMALY_SHARE)))
        for life in mismatched:
            pickup = life.last("pickup")
            assert pickup is not None
            pickup.fields["from_party"] = rng.choice([s for s in self.sites if s != life.site])
        self.mismatches = len(mismatched)

        taken = {id(life) for life in mismatched}
        received = [
            life for life in self.lives if life.last("intake") is not None and id(life) not in taken
        ]
        heavy = rng.sample(received, min(len(received), _share(total, ANOMALY_SHARE)))
        for life in heavy:
            factor = 1 + rng.choice([-1, 1]) * rng.uniform(0.08, 0.20)
            kg = round(life.sealed_weight * factor, 2)
            for scan in life.scans:
                if scan.kind == "intake":
                    scan.fields["weight_kg"] = kg
                elif scan.kind == "processed":
                    scan.fields["input_weight_kg"] = kg
        self.weight_discrepancies = len(heavy)

    def corrections_phase(self) -> None:
        """A site voids a dropoff it scanned twice by mistake (only the later, extra ones)."""
        rng = self.rng
        settled = self.now - timedelta(days=2)
        candidates = [
            dropoffs[-1]
            for life in self.lives
            if len(dropoffs := [s for s in life.scans if s.kind == "dropoff"]) > 1
            and dropoffs[-1].true_at <= settled
        ]
        chosen = rng.sample(
            candidates, min(len(candidates), _share(self.config.containers, CORRECTION_SHARE))
        )
        for original in sorted(chosen, key=lambda scan: scan.order):
            at = min(original.true_at + _hours(rng, 2, 30), self.now - _HOUR)
            self.order += 1
            self.corrections.append(
                _Scan(
                    self.order,
                    at,
                    original.device,
                    "correction",
                    original.container_id,
                    original.location_id,
                    {
                        "reason": "did_not_occur",
                        "note": "dropoff scanned twice by mistake",
                    },
                    corrects=original,
                )
            )

    # events and uploads

    def bodies(self) -> list[_Scan]:
        scans = [scan for life in self.lives for scan in life.scans] + self.corrections
        scans.sort(key=lambda scan: scan.order)
        seed, run = self.config.seed, self.run
        for scan in scans:
            scan.event_id = str(uuid.uuid5(_EVENT_NAMESPACE, f"{run}:{seed}:{scan.order}"))
        by_device: dict[str, list[_Scan]] = defaultdict(list)
        for scan in scans:
            by_device[scan.device.device_id].append(scan)
        for device_scans in by_device.values():
            device_scans.sort(key=lambda scan: (scan.true_at, scan.order))
            for seq, scan in enumerate(device_scans, start=1):
                body: dict[str, Any] = {
                    "event_id": scan.event_id,
                    "type": scan.kind,
                    "container_id": scan.container_id,
                    "occurred_at": _stamp(scan.true_at + scan.device.clock_offset),
                    "location_id": scan.location_id,
                    "device_seq": seq,
                }
                if scan.corrects is not None:
                    body["corrects_event_id"] = scan.corrects.event_id
                body.update(scan.fields)
                scan.body = body
        return scans

    def _batches(self, device: DeviceSpec, scans: list[_Scan], at: datetime) -> list[Upload]:
        uploads = []
        size = self.config.max_batch
        for start in range(0, len(scans), size):
            chunk = scans[start : start + size]
            events = [scan.body for scan in chunk]
            self.rng.shuffle(events)
            late = at - min(scan.true_at for scan in chunk) > LATE_AFTER
            uploads.append(Upload(device.device_id, events, at, late=late))
        return uploads

    def uploads(self, scans: list[_Scan]) -> list[Upload]:
        rng = self.rng
        pending: dict[str, list[_Scan]] = defaultdict(list)
        for scan in scans:
            if scan.kind != "correction":
                pending[scan.device.device_id].append(scan)
        regular: list[tuple[Upload, datetime]] = []
        for party_devices in self.devices.values():
            for device in party_devices:
                queue = sorted(pending[device.device_id], key=lambda s: (s.true_at, s.order))
                low, high, outage = _SYNC[device.role]
                at = queue[0].true_at if queue else self.now
                index = 0
                while index < len(queue):
                    at += _hours(rng, low, high)
                    if rng.random() < outage:
                        at += _hours(rng, *_OUTAGE_HOURS)
                    at = min(at, self.now)
                    taken = []
                    while index < len(queue) and queue[index].true_at <= at:
                        taken.append(queue[index])
                        index += 1
                    if taken:
                        oldest = min(scan.true_at for scan in taken)
                        regular += [(u, oldest) for u in self._batches(device, taken, at)]

        duplicates: list[Upload] = []
        if regular:
            count = _share(len(regular), DUPLICATE_SHARE)
            for position in sorted(rng.sample(range(len(regular)), count)):
                upload, oldest = regular[position]
                at = min(upload.at + timedelta(minutes=rng.uniform(5, 360)), self.now)
                events = [dict(event) for event in upload.events]
                rng.shuffle(events)
                late = at - oldest > LATE_AFTER
                duplicates.append(Upload(upload.device_id, events, at, duplicate=True, late=late))
        ordered = sorted(
            [upload for upload, _ in regular] + duplicates,
            key=lambda u: (u.at, u.device_id, u.duplicate),
        )
        for scan in self.corrections:
            late = self.now - scan.true_at > LATE_AFTER
            ordered.append(
                Upload(scan.device.device_id, [scan.body], self.now, late=late, correction=True)
            )
        return ordered

    def summary(self, scans: list[_Scan], uploads: list[Upload]) -> ScenarioSummary:
        states: Counter[str] = Counter()
        for life in self.lives:
            kinds = [scan.kind for scan in life.scans if scan.kind in _STATE_OF]
            states[_STATE_OF[kinds[-1]]] += 1
        skew_edge = self.now + CLOCK_SKEW_LIMIT
        skewed = sum(
            1
            for scan in scans
            if scan.device.clock_offset and scan.true_at + scan.device.clock_offset > skew_edge
        )
        duplicates = [upload for upload in uploads if upload.duplicate]
        return ScenarioSummary(
            containers=len(self.lives),
            events=len(scans),
            events_to_post=sum(len(upload.events) for upload in uploads),
            uploads=len(uploads),
            duplicate_uploads=len(duplicates),
            duplicate_events=sum(len(upload.events) for upload in duplicates),
            late_uploads=sum(upload.late for upload in uploads),
            corrections=len(self.corrections),
            shipments=self.shipments,
            hub_shipments=self.hub_shipments,
            states={state: states[state] for state in STATES},
            expected_anomalies={
                "custody_mismatch": self.mismatches,
                "weight_discrepancy": self.weight_discrepancies,
                "clock_skew": skewed,
            },
        )


def build_scenario(config: ScenarioConfig) -> Scenario:
    """The network and the upload plan for ``config``; the same config gives the same plan."""
    builder = _Builder(config)
    builder.network()
    builder.lives_at_sites()
    builder.pickups()
    builder.anomalies()
    builder.corrections_phase()
    scans = builder.bodies()
    uploads = builder.uploads(scans)
    assert builder.skewed is not None
    return Scenario(
        config=config,
        parties=tuple(builder.parties),
        devices=tuple(d for devices in builder.devices.values() for d in devices),
        uploads=tuple(uploads),
        summary=builder.summary(scans, uploads),
        skewed_device=builder.skewed.device_id,
    )
