"""Reports for auditors (docs/reports.md); auditor or admin tokens only.

- ``GET /v1/reports/mass-balance?from=&to=&group_by=site|plant|chemistry``
- ``GET /v1/reports/shipment-log.csv?from=&to=&party=`` — the 40 CFR 273 shipment log
- ``GET /v1/shipments/{shipment_id}/certificate.pdf`` — certificate of recycling
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Path, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from services.ledger.api.dependencies import CSV_MEDIA_TYPE, Reader, attachment
from services.ledger.domain.certificate import (
    CertificateError,
    CertificateUnavailable,
    build_certificate,
)
from services.ledger.domain.integrity.hashing import format_instant
from services.ledger.domain.mass_balance import (
    Discrepancy,
    Figures,
    GroupBy,
    MassBalance,
    Window,
    mass_balance,
)
from services.ledger.domain.shipment_log import shipment_log
from services.ledger.domain.weights import rounded_kg
from services.ledger.readside import ReadSide
from services.ledger.readside.proofs import ProofUnavailable
from services.ledger.rendering.certificate_pdf import MEDIA_TYPE as PDF_MEDIA_TYPE
from services.ledger.rendering.certificate_pdf import render_pdf
from services.ledger.rendering.shipment_log_csv import write_log_csv
from services.web.openapi import problem_responses
from services.web.problems import Problem

From = Annotated[
    datetime,
    Query(alias="from", description="Window start, inclusive (RFC 3339 with an offset)."),
]
To = Annotated[
    datetime, Query(alias="to", description="Window end, exclusive (RFC 3339 with an offset).")
]
PartyParam = Annotated[
    str | None,
    Query(
        pattern=r"^[a-z0-9][a-z0-9._-]{1,63}$",
        description="Whose log: the shipments this party sent or received.",
    ),
]
ShipmentId = Annotated[
    str,
    Path(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f]+$", description="Bill of lading."),
]
_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")
MASS_BALANCE_PATH = "/v1/reports/mass-balance"
CERTIFICATE_ROUTE = "/v1/shipments/{shipment_id:path}/certificate.pdf"


def certificate_path(shipment_id: str) -> str:
    """The path of ``shipment_id``'s certificate, the id percent-encoded (a ``/`` too)."""
    return CERTIFICATE_ROUTE.replace("{shipment_id:path}", quote(shipment_id, safe=""))


def window_of(start: datetime, end: datetime) -> Window:
    if start.tzinfo is None or end.tzinfo is None:
        raise Problem(422, "Invalid query", "from, to: need a UTC offset")
    if start >= end:
        raise Problem(422, "Invalid query", "from must be before to")
    return Window(start, end)


def discrepancy_json(item: Discrepancy) -> dict[str, Any]:
    return {
        "container_id": item.container_id,
        "kind": item.kind.value,
        "event_id": item.event_id,
        "occurred_at": format_instant(item.occurred_at) if item.occurred_at else None,
        "sealed_kg": rounded_kg(item.sealed_kg),
        "weight_kg": rounded_kg(item.weight_kg),
        "difference_kg": rounded_kg(item.difference_kg),
        "limit_kg": rounded_kg(item.limit_kg),
    }


def figures_json(figures: Figures) -> dict[str, Any]:
    return {
        "containers": figures.containers,
        "shipped_containers": figures.shipped_containers,
        "sealed_kg": rounded_kg(figures.sealed_kg),
        "taken_in_containers": figures.taken_in_containers,
        "intake_kg": rounded_kg(figures.intake_kg),
        "accepted_containers": figures.accepted_containers,
        "accepted_kg": rounded_kg(figures.accepted_kg),
        "not_taken_in_containers": figures.not_taken_in_containers,
        "not_taken_in_kg": rounded_kg(figures.not_taken_in_kg),
        "discrepancy_count": len(figures.discrepancies),
        "discrepancies": [discrepancy_json(item) for item in figures.discrepancies],
    }


def mass_balance_json(report: MassBalance) -> dict[str, Any]:
    return {
        "from": format_instant(report.window.start),
        "to": format_instant(report.window.end),
        "group_by": report.group_by.value if report.group_by else None,
        "tolerance": {
            "kg": report.rules.weight_tolerance_kg,
            "pct": report.rules.weight_tolerance_pct,
        },
        "groups": [{"key": group.key, **figures_json(group)} for group in report.groups],
        "totals": figures_json(report.totals),
    }


def reports_router(read_side: ReadSide) -> APIRouter:
    reports = read_side.reports
    router = APIRouter(tags=["reports"])

    @router.get(MASS_BALANCE_PATH, responses=problem_responses(422))
    async def mass_balance_report(
        reader: Reader,
        start: From,
        end: To,
        group_by: Annotated[
            GroupBy | None, Query(description="Figures per site, plant or chemistry too.")
        ] = None,
    ) -> dict[str, Any]:
        window = window_of(start, end)
        facts = await run_in_threadpool(reports.mass_balance_facts, window, reader.scope)
        report = await run_in_threadpool(
            mass_balance, facts, window, group_by=group_by, rules=reports.rules
        )
        return mass_balance_json(report)

    @router.get(
        "/v1/reports/shipment-log.csv",
        response_class=Response,
        responses={
            200: {"content": {CSV_MEDIA_TYPE: {}}, "description": "One row per shipment"},
            **problem_responses(422),
        },
    )
    async def shipment_log_csv(
        reader: Reader, start: From, end: To, party: PartyParam = None
    ) -> Response:
        window = window_of(start, end)
        facts = await run_in_threadpool(reports.shipment_log_facts, window, reader.scope)
        lines = await run_in_threadpool(shipment_log, facts, window, party=party)
        text = await run_in_threadpool(write_log_csv, lines)
        name = f"shipment-log-{party or 'all'}-{start:%Y%m%d}-{end:%Y%m%d}.csv"
        return Response(text, media_type=CSV_MEDIA_TYPE, headers=attachment(name))

    @router.get(
        CERTIFICATE_ROUTE,
        response_class=Response,
        responses={
            200: {"content": {PDF_MEDIA_TYPE: {}}, "description": "Certificate of recycling"},
            **problem_responses(404, 422, 500),
        },
    )
    async def certificate_pdf(reader: Reader, shipment_id: ShipmentId) -> Response:
        try:
            inputs = await run_in_threadpool(reports.certificate_inputs, shipment_id)
            if reader.scoped:  # all of the shipment within the scope, or as if unknown
                members = {entry.event.container_id for entry in inputs.entries}
                if await run_in_threadpool(read_side.containers.outside, members, reader.scope):
                    raise CertificateUnavailable(
                        f"shipment {shipment_id!r} is not recorded as of the latest signed "
                        f"checkpoint (tree size {inputs.checkpoint.checkpoint.tree_size})"
                    )
            certificate = await run_in_threadpool(
                lambda: build_certificate(
                    shipment_id,
                    inputs.entries,
                    checkpoint=inputs.checkpoint.checkpoint,
                    note=inputs.checkpoint.note,
                    proofs=inputs.proofs,
                    issued_at=datetime.now(UTC),
                    names=inputs.names,
                )
            )
        except (ProofUnavailable, CertificateUnavailable) as error:
            raise Problem(404, "Not found", str(error)) from error
        except CertificateError as error:
            raise Problem(500, "Integrity check failed", str(error)) from error
        data = await run_in_threadpool(render_pdf, certificate)
        safe = _UNSAFE_FILENAME.sub("_", shipment_id)[:80]
        return Response(
            data, media_type=PDF_MEDIA_TYPE, headers=attachment(f"certificate-{safe}.pdf")
        )

    return router
