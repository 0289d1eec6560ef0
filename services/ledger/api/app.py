"""Auditor queries over the ledger (docs/architecture.md §5): auditor and admin tokens read
everything; party users and scoped auditors read within their scope (docs/api.md)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from services.contract.events import ContainerId
from services.ledger.adapters.epcis_queries import EpcisQueryStore
from services.ledger.adapters.merkle_log import StoredCheckpoint
from services.ledger.api import deliveries, log
from services.ledger.api.admin import admin_router, registry_audit_router
from services.ledger.api.dependencies import CSV_MEDIA_TYPE, Reader, attachment
from services.ledger.api.epcis import epcis_router
from services.ledger.api.event_query import event_query_router
from services.ledger.api.presenters import anomaly_json, entry_json, trail_json
from services.ledger.api.reports import MASS_BALANCE_PATH, certificate_path, reports_router
from services.ledger.domain.custody import AnomalyCode, ContainerState, CustodyTrail
from services.ledger.domain.integrity.bundle import BUNDLE_FORMAT, BUNDLE_FORMAT_V1
from services.ledger.domain.integrity.checkpoint import CheckpointError, VerifierKey
from services.ledger.domain.integrity.hashing import format_instant
from services.ledger.readside import ReadSide
from services.ledger.readside.containers import ContainerFilter
from services.ledger.readside.proofs import ProofUnavailable
from services.ledger.rendering.csv_export import TRAIL_COLUMNS, search_rows, trail_rows, write_csv
from services.ledger.rendering.epcis import MEDIA_TYPE as EPCIS_MEDIA_TYPE
from services.ledger.rendering.epcis import epcis_document
from services.ledger.ui.router import ReportRoutes, ui_router
from services.registry.principals import ApiUser
from services.registry.store import JURISDICTION, RegistryStore
from services.web.cursors import decode_container_cursor, encode_container_cursor
from services.web.openapi import install_openapi, problem_responses
from services.web.ops import ReadinessCheck, install_ops_routes
from services.web.parameters import MAX_BIGINT, PRINTABLE
from services.web.problems import Problem, install_problem_handlers

PageSize = Annotated[int, Query(ge=1, le=500, description="Page size.")]
ExportSize = Annotated[int, Query(ge=1, le=500, description="Containers per export page.")]
AsOf = Annotated[
    datetime | None, Query(description="Only entries recorded at or before this time.")
]


async def container_filter(
    request: Request,
    state: ContainerState | None = None,
    custodian: Annotated[str | None, Query(max_length=64, pattern=PRINTABLE)] = None,
    location: Annotated[str | None, Query(max_length=128, pattern=PRINTABLE)] = None,
    anomaly: AnomalyCode | None = None,
    jurisdiction: Annotated[
        str | None,
        Query(
            pattern=JURISDICTION.pattern,
            description="ISO 3166-2: containers a party of this jurisdiction took part in.",
        ),
    ] = None,
) -> ContainerFilter:
    touched_by = None
    if jurisdiction is not None:
        registry: RegistryStore = request.app.state.registry
        parties = await run_in_threadpool(registry.parties)
        touched_by = frozenset(p["party_id"] for p in parties if p["jurisdiction"] == jurisdiction)
    return ContainerFilter(state, custodian, location, anomaly, touched_by)


Filters = Annotated[ContainerFilter, Depends(container_filter)]


def cursor_owner(reader: ApiUser) -> str:
    """Whose page cursors these are: every token's cursors are its own."""
    return reader.token_id


def create_app(
    registry: RegistryStore,
    read_side: ReadSide,
    checks: dict[str, ReadinessCheck],
    verifier_key: Callable[[], VerifierKey],
    epcis_queries: EpcisQueryStore,
) -> FastAPI:
    app = FastAPI(
        title="Battery Custody — ledger",
        version="0.1.0",
        description="Custody trails, anomalies and recorded entries for auditors.",
    )
    install_problem_handlers(app)
    install_ops_routes(app, checks)

    app.state.registry = registry
    app.include_router(deliveries.router(read_side))
    app.include_router(admin_router(registry))
    app.include_router(registry_audit_router(registry))
    app.include_router(log.router(read_side))

    async def require_visible(container_id: str, reader: ApiUser, missing: str) -> None:
        """404 with the very answer an unknown container gets, outside the reader's scope."""
        if not await run_in_threadpool(read_side.containers.visible, container_id, reader.scope):
            raise Problem(404, "Not found", missing)

    async def recorded_trail(
        container_id: str, as_of: datetime | None, reader: ApiUser
    ) -> CustodyTrail:
        if as_of is not None and as_of.tzinfo is None:
            raise Problem(422, "Invalid query", "as_of: needs a UTC offset")
        missing = f"no recorded events for container {container_id!r}"
        await require_visible(container_id, reader, missing)
        trail = await run_in_threadpool(
            read_side.containers.trail, container_id, now=datetime.now(UTC), as_of=as_of
        )
        if trail is None:
            raise Problem(404, "Not found", missing)
        return trail

    @app.get(
        "/v1/containers/{container_id}/custody",
        tags=["custody"],
        responses=problem_responses(404, 422),
    )
    async def custody(
        reader: Reader, container_id: Annotated[ContainerId, Path()], as_of: AsOf = None
    ) -> dict[str, Any]:
        return trail_json(await recorded_trail(container_id, as_of, reader))

    @app.get(
        "/v1/containers/{container_id}/custody.epcis.json",
        tags=["exports"],
        response_class=JSONResponse,
        responses={
            200: {"content": {EPCIS_MEDIA_TYPE: {}}, "description": "EPCISDocument"},
            **problem_responses(404, 422),
        },
    )
    async def custody_epcis(
        reader: Reader, container_id: Annotated[ContainerId, Path()], as_of: AsOf = None
    ) -> JSONResponse:
        trail = await recorded_trail(container_id, as_of, reader)
        roles = await run_in_threadpool(registry.party_roles)
        document = epcis_document(trail, created=datetime.now(UTC), party_roles=roles)
        return JSONResponse(
            document,
            media_type=EPCIS_MEDIA_TYPE,
            headers=attachment(f"{container_id}.epcis.jsonld"),
        )

    @app.get(
        "/v1/containers/{container_id}/custody.csv",
        tags=["exports"],
        response_class=Response,
        responses={
            200: {"content": {CSV_MEDIA_TYPE: {}}, "description": "One row per event"},
            **problem_responses(404, 422),
        },
    )
    async def custody_csv(
        reader: Reader, container_id: Annotated[ContainerId, Path()], as_of: AsOf = None
    ) -> Response:
        trail = await recorded_trail(container_id, as_of, reader)
        text = write_csv(trail_rows(trail), TRAIL_COLUMNS)
        return Response(
            text, media_type=CSV_MEDIA_TYPE, headers=attachment(f"{container_id}.custody.csv")
        )

    @app.get(
        "/v1/containers.csv",
        tags=["exports"],
        response_class=Response,
        responses={
            200: {"content": {CSV_MEDIA_TYPE: {}}, "description": "One row per event"},
            **problem_responses(400, 422),
        },
    )
    async def containers_csv(
        reader: Reader,
        request: Request,
        flt: Filters,
        cursor: Annotated[str | None, Query(max_length=200)] = None,
        limit: ExportSize = 500,
    ) -> Response:
        owner = cursor_owner(reader)
        now, after = datetime.now(UTC), decode_container_cursor(cursor, owner)
        rows = await run_in_threadpool(
            read_side.containers.search, flt, now=now, after=after, limit=limit, scope=reader.scope
        )
        ids = [row["container_id"] for row in rows]
        trails = await run_in_threadpool(read_side.containers.trails, ids, now=now)
        text = await run_in_threadpool(write_csv, search_rows(trails), TRAIL_COLUMNS)
        headers = attachment("containers.csv")
        if len(rows) == limit:
            following = request.url.include_query_params(
                cursor=encode_container_cursor(ids[-1], owner)
            )
            headers["Link"] = f'<{following.path}?{following.query}>; rel="next"'
        return Response(text, media_type=CSV_MEDIA_TYPE, headers=headers)

    @app.get("/v1/containers", tags=["custody"], responses=problem_responses(400, 422))
    async def containers(
        reader: Reader,
        flt: Filters,
        cursor: Annotated[str | None, Query(max_length=200)] = None,
        limit: PageSize = 50,
    ) -> dict[str, Any]:
        rows = await run_in_threadpool(
            read_side.containers.search,
            flt,
            now=datetime.now(UTC),
            after=decode_container_cursor(cursor, cursor_owner(reader)),
            limit=limit,
            scope=reader.scope,
        )
        items = [
            {
                "container_id": row["container_id"],
                "state": row["state"],
                "custodian": row["custodian"],
                "location_id": row["location_id"],
                "entry_count": row["entry_count"],
                "last_occurred_at": format_instant(row["last_occurred_at"]),
                "anomalies": row["anomalies"],
            }
            for row in rows
        ]
        next_cursor = (
            encode_container_cursor(rows[-1]["container_id"], cursor_owner(reader))
            if len(rows) == limit
            else None
        )
        return {"items": items, "next_cursor": next_cursor}

    @app.get("/v1/events/{event_id}", tags=["events"], responses=problem_responses(404, 422))
    async def event(reader: Reader, event_id: UUID) -> dict[str, Any]:
        missing = f"event {event_id} is not recorded"
        entry = await run_in_threadpool(read_side.containers.entry, event_id)
        if entry is None:
            raise Problem(404, "Not found", missing)
        await require_visible(entry.event.container_id, reader, missing)
        return entry_json(entry)

    @app.get("/v1/anomalies", tags=["custody"], responses=problem_responses(400, 422))
    async def anomalies(
        reader: Reader,
        code: AnomalyCode | None = None,
        cursor: Annotated[str | None, Query(max_length=200)] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
    ) -> dict[str, Any]:
        trails = await run_in_threadpool(
            read_side.containers.trails_with_anomalies,
            code,
            now=datetime.now(UTC),
            after=decode_container_cursor(cursor, cursor_owner(reader)),
            limit=limit,
            scope=reader.scope,
        )
        items = [
            {"container_id": trail.container_id, **anomaly_json(item)}
            for trail in trails
            for item in trail.anomalies
            if code is None or item.code is code
        ]
        next_cursor = (
            encode_container_cursor(trails[-1].container_id, cursor_owner(reader))
            if len(trails) == limit
            else None
        )
        return {"items": items, "next_cursor": next_cursor}

    def unavailable(error: ProofUnavailable) -> Problem:
        return Problem(404, "Not found", str(error))

    @app.get(
        "/v1/events/{event_id}/proof", tags=["integrity"], responses=problem_responses(404, 422)
    )
    async def event_proof(
        reader: Reader,
        event_id: UUID,
        tree_size: Annotated[
            int | None,
            Query(ge=1, le=MAX_BIGINT, description="A signed checkpoint's size; default latest."),
        ] = None,
    ) -> dict[str, Any]:
        if reader.scoped:
            entry = await run_in_threadpool(read_side.containers.entry, event_id)
            missing = f"event {event_id} is not recorded"  # as ProofUnavailable says it
            if entry is None:
                raise Problem(404, "Not found", missing)
            await require_visible(entry.event.container_id, reader, missing)
        try:
            answer = await run_in_threadpool(read_side.proofs.inclusion, event_id, tree_size)
        except ProofUnavailable as error:
            raise unavailable(error) from error
        return {
            "event_id": str(event_id),
            "leaf_index": answer.seq,
            "leaf_hash": answer.entry_hash.hex(),
            "tree_size": answer.tree_size,
            "inclusion_proof": [item.hex() for item in answer.proof],
            "checkpoint": answer.checkpoint.note if answer.checkpoint else None,
        }

    @app.get("/v1/checkpoints/latest", tags=["integrity"], responses=problem_responses(404))
    async def checkpoint_latest(_: Reader) -> dict[str, Any]:  # public at /log/checkpoint too
        latest = await run_in_threadpool(read_side.proofs.latest)
        if latest is None:
            raise Problem(404, "Not found", "no checkpoint has been signed yet")
        return checkpoint_json(latest)

    @app.get("/v1/checkpoints/key", tags=["integrity"], responses=problem_responses(404))
    async def checkpoint_key() -> dict[str, str]:
        try:
            key = verifier_key()
        except CheckpointError as error:
            raise Problem(404, "Not found", str(error)) from error
        return {"name": key.name, "verifier_key": str(key)}

    @app.get(
        "/v1/checkpoints/consistency", tags=["integrity"], responses=problem_responses(404, 422)
    )
    async def checkpoint_consistency(
        _: Reader,
        first: Annotated[int, Query(ge=1, le=MAX_BIGINT)],
        second: Annotated[int, Query(ge=1, le=MAX_BIGINT)],
    ) -> dict[str, Any]:
        if first > second:
            raise Problem(422, "Invalid query", "first must not be larger than second")
        try:
            older, newer, proof = await run_in_threadpool(
                read_side.proofs.consistency, first, second
            )
        except ProofUnavailable as error:
            raise unavailable(error) from error
        return {
            "first": checkpoint_json(older),
            "second": checkpoint_json(newer),
            "consistency_proof": [item.hex() for item in proof],
        }

    @app.get(
        "/v1/containers/{container_id}/bundle",
        tags=["integrity"],
        responses=problem_responses(404, 422),
    )
    async def bundle(
        reader: Reader,
        container_id: Annotated[ContainerId, Path()],
        trusted_size: Annotated[
            int | None,
            Query(ge=1, le=MAX_BIGINT, description="Add a consistency proof from this size."),
        ] = None,
        format: Annotated[
            Literal["2", "1"],
            Query(description="Bundle format: 2 (entries as hashed), or 1 (the old form)."),
        ] = "2",
    ) -> JSONResponse:
        version = BUNDLE_FORMAT if format == "2" else BUNDLE_FORMAT_V1
        if reader.scoped:  # outside the scope, the answer an unknown container gets
            latest = await run_in_threadpool(read_side.proofs.latest)
            if latest is None:
                raise Problem(404, "Not found", "no checkpoint has been signed yet")
            await require_visible(
                container_id,
                reader,
                f"no entry of container {container_id!r} is covered by checkpoint size "
                f"{latest.checkpoint.tree_size}",
            )
        try:
            document = await run_in_threadpool(
                read_side.proofs.bundle, container_id, trusted_size, version
            )
        except ProofUnavailable as error:
            raise unavailable(error) from error
        return JSONResponse(
            document,
            headers={"Content-Disposition": f'attachment; filename="{container_id}.bundle.json"'},
        )

    app.include_router(event_query_router(read_side, registry))
    app.include_router(epcis_router(read_side, registry, epcis_queries))
    reports = ReportRoutes(mass_balance=MASS_BALANCE_PATH, certificate=certificate_path)
    app.include_router(ui_router(registry, read_side, verifier_key, reports))

    app.include_router(reports_router(read_side))
    install_openapi(app)
    return app


def checkpoint_json(stored: StoredCheckpoint) -> dict[str, Any]:
    return {
        "origin": stored.checkpoint.origin,
        "tree_size": stored.checkpoint.tree_size,
        "root_hash": stored.checkpoint.root_hash.hex(),
        "key_name": stored.key_name,
        "note": stored.note,
    }
