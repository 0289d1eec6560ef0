"""The EPCIS 2.0 capture interface: ``/epcis/capture`` and ``/epcis/events`` (docs/epcis.md)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, Response

from services.ingest.api.body import read_json
from services.ingest.api.deps import CurrentDevice, capture_of, context_of
from services.ingest.domain.capture_job import Behaviour
from services.web.epcis import VERSION_HEADERS
from services.web.openapi import problem_responses
from services.web.problems import Problem

_DOCUMENT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/ld+json": {"schema": {"type": "object"}},
            "application/json": {"schema": {"type": "object"}},
        },
        "description": "An EPCISDocument (JSON-LD), validated against GS1's EPCIS 2.0 schema.",
    }
}

router = APIRouter(prefix="/epcis", tags=["EPCIS capture"])


def _behaviour(value: str | None) -> Behaviour:
    if value in (None, "", "rollback"):
        return "rollback"
    if value == "proceed":
        return "proceed"
    raise Problem(
        400,
        "Invalid GS1-Capture-Error-Behaviour",
        f"GS1-Capture-Error-Behaviour is rollback or proceed, not {value!r}",
    )


@router.options(
    "/capture",
    status_code=204,
    summary="The capture limits, versions and error behaviours this service supports",
)
async def capture_options(request: Request) -> Response:
    limits = context_of(request).capture_limits
    return Response(
        status_code=204,
        headers={
            **VERSION_HEADERS,
            "Allow": "OPTIONS, GET, POST",
            "GS1-EPCIS-Capture-Limit": str(limits.max_events),
            "GS1-EPCIS-Capture-File-Size-Limit": str(limits.max_bytes),
            "GS1-Capture-Error-Behaviour": "rollback, proceed",
        },
    )


@router.post(
    "/capture",
    status_code=202,
    summary="Capture an EPCISDocument; 202 with the capture job's Location",
    responses=problem_responses(400, 413, 422, 429, 503),
    openapi_extra=_DOCUMENT_BODY,
)
async def capture(
    request: Request,
    poster: CurrentDevice,
    error_behaviour: Annotated[
        str | None,
        Header(
            alias="GS1-Capture-Error-Behaviour",
            description="rollback (default): all events or none; proceed: the valid ones.",
        ),
    ] = None,
) -> JSONResponse:
    behaviour = _behaviour(error_behaviour)
    capturing = capture_of(request)
    document = await read_json(request, capturing.limits.max_bytes)
    job = await capturing.capture_document(poster, document, behaviour)
    return JSONResponse(
        job.as_json(),
        202,
        headers={**VERSION_HEADERS, "Location": f"/epcis/capture/{job.capture_id}"},
    )


@router.post(
    "/events",
    status_code=202,
    summary="Capture one EPCIS event",
    responses=problem_responses(400, 413, 422, 429, 503),
    openapi_extra=_DOCUMENT_BODY,
)
async def capture_one(request: Request, poster: CurrentDevice) -> JSONResponse:
    capturing = capture_of(request)
    event = await read_json(request, context_of(request).max_body_bytes)
    job = await capturing.capture_event(poster, event)
    if job.errors:
        errors = [item for failure in job.errors for item in failure.errors]
        raise Problem(422, "Invalid EPCIS event", errors[0]["message"], errors=errors)
    return JSONResponse(
        job.as_json(),
        202,
        headers={**VERSION_HEADERS, "Location": f"/epcis/capture/{job.capture_id}"},
    )


@router.get(
    "/capture/{capture_id}",
    summary="One capture job of this device's party",
    responses=problem_responses(404),
)
def capture_job(request: Request, poster: CurrentDevice, capture_id: UUID) -> JSONResponse:
    job = capture_of(request).jobs.get(capture_id, poster.party_id)
    if job is None:
        raise Problem(404, "Not found", f"no capture job {capture_id} of party {poster.party_id}")
    return JSONResponse(job.as_json(), headers=VERSION_HEADERS)


@router.get("/capture", summary="The latest capture jobs of this device's party")
def capture_jobs(
    request: Request,
    poster: CurrentDevice,
    per_page: Annotated[int, Query(alias="perPage", ge=1, le=100)] = 30,
) -> JSONResponse:
    jobs = capture_of(request).jobs.recent(poster.party_id, per_page)
    return JSONResponse([job.as_json() for job in jobs], headers=VERSION_HEADERS)
