"""``GET /v1/events``: a filter query over recorded events in the spirit of the EPCIS 2.0 query
interface (GE_eventTime, LT_eventTime, GE_recordTime, LT_recordTime, EQ_bizStep,
EQ_bizLocation, EQ_readPoint, MATCH_epc), paged by ledger seq. The terms' meaning is
documented in ``services/ledger/domain/event_filter.py``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import StringConstraints

from services.ledger.api.dependencies import Reader
from services.ledger.api.presenters import entry_json
from services.ledger.domain.event_filter import (
    EventFilter,
    QueryTermError,
    biz_step_of,
    location_id_of,
    match_epcs,
    select_steps,
    split_list,
)
from services.ledger.readside import ReadSide
from services.registry.store import RegistryStore
from services.web.cursors import decode_seq_cursor
from services.web.openapi import problem_responses
from services.web.parameters import PRINTABLE
from services.web.problems import Problem

MAX_PAGE = 500
#: One value of a list parameter (a location, step or container id, or its URI).
Term = Annotated[str, StringConstraints(max_length=512, pattern=PRINTABLE)]


def _instant(name: str, value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise Problem(422, "Invalid query", f"{name}: needs a UTC offset")
    return value


def _time(alias: str, description: str) -> Any:
    return Query(alias=alias, description=description)


def event_query_router(read_side: ReadSide, registry: RegistryStore) -> APIRouter:
    router = APIRouter(tags=["events"])

    @router.get("/v1/events", responses=problem_responses(400, 422))
    async def query_events(
        reader: Reader,
        ge_event_time: Annotated[
            datetime | None, _time("GE_eventTime", "Events that occurred at or after this time.")
        ] = None,
        lt_event_time: Annotated[
            datetime | None, _time("LT_eventTime", "Events that occurred before this time.")
        ] = None,
        ge_record_time: Annotated[
            datetime | None, _time("GE_recordTime", "Entries recorded at or after this time.")
        ] = None,
        lt_record_time: Annotated[
            datetime | None, _time("LT_recordTime", "Entries recorded before this time.")
        ] = None,
        biz_steps: Annotated[
            list[Term] | None,
            Query(
                alias="EQ_bizStep",
                description="CBV bizSteps (short names or URIs), comma-separated or repeated. "
                "A handoff is `receiving` when its to_party is a hub or plant, else `consigning`.",
            ),
        ] = None,
        biz_locations: Annotated[
            list[Term] | None,
            Query(
                alias="EQ_bizLocation",
                description="Location ids or URIs (repeat for several); only events that "
                "leave the container there (no pickup, processed or consigning handoff).",
            ),
        ] = None,
        read_points: Annotated[
            list[Term] | None,
            Query(alias="EQ_readPoint", description="Location ids or URIs (repeat for several)."),
        ] = None,
        epcs: Annotated[
            list[Term] | None,
            Query(
                alias="MATCH_epc",
                description="Container ids or URIs, comma-separated or repeated; "
                "a trailing * matches a prefix.",
            ),
        ] = None,
        cursor: Annotated[
            str | None, Query(max_length=20, description="next_cursor of the previous page.")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    ) -> dict[str, Any]:
        try:
            flt = EventFilter(
                ge_event_time=_instant("GE_eventTime", ge_event_time),
                lt_event_time=_instant("LT_eventTime", lt_event_time),
                ge_record_time=_instant("GE_recordTime", ge_record_time),
                lt_record_time=_instant("LT_recordTime", lt_record_time),
                selections=(select_steps(split_list(biz_steps)),) if biz_steps else (),
                biz_locations=tuple(location_id_of(v) for v in biz_locations or ()),
                read_points=tuple(location_id_of(v) for v in read_points or ()),
                epc_matches=(match_epcs(split_list(epcs)),) if epcs else (),
                scope=reader.scope,
            )
        except QueryTermError as error:
            raise Problem(422, "Invalid query", str(error)) from error
        roles = await run_in_threadpool(registry.party_roles)
        found = await run_in_threadpool(
            read_side.events.find,
            flt,
            party_roles=roles,
            after_seq=decode_seq_cursor(cursor),
            limit=limit,
        )
        items = []
        for entry in found:
            to_party = getattr(entry.event, "to_party", None)
            items.append(
                {**entry_json(entry), "bizStep": biz_step_of(entry.event.type, to_party, roles)}
            )
        next_cursor = str(found[-1].seq) if len(found) == limit else None
        return {"items": items, "next_cursor": next_cursor}

    return router
