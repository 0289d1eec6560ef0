"""``GET /v1/webhook-deliveries``: every attempt to notify a plant (any reader: a party user or a
scoped auditor sees those to the plants of its scope)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool

from services.contract.events import PartyId
from services.ledger.api.dependencies import Reader
from services.ledger.domain.notifications import NotificationStatus
from services.ledger.readside import ReadSide
from services.web.cursors import decode_delivery_cursor, encode_delivery_cursor
from services.web.openapi import problem_responses


def router(read_side: ReadSide) -> APIRouter:
    routes = APIRouter(tags=["notifications"])

    @routes.get(
        "/v1/webhook-deliveries",
        summary="Attempts to deliver plant notifications, oldest first",
        responses=problem_responses(400, 422),
    )
    async def webhook_deliveries(
        reader: Reader,
        party_id: Annotated[PartyId | None, Query(description="Only this plant's.")] = None,
        status: Annotated[
            NotificationStatus | None, Query(description="Only notifications now in this state.")
        ] = None,
        cursor: Annotated[str | None, Query(max_length=200)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> dict[str, Any]:
        items = await run_in_threadpool(
            read_side.deliveries.attempts,
            party_id=party_id,
            status=status,
            after_id=decode_delivery_cursor(cursor),
            limit=limit,
            recipients=reader.scope,
        )
        next_cursor = encode_delivery_cursor(items[-1]["id"]) if len(items) == limit else None
        return {"items": items, "next_cursor": next_cursor}

    return routes
