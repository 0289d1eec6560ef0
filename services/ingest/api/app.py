"""The ingest HTTP API, the only door in (docs/architecture.md §5): its routers, the mapping of
its errors to problem+json, its OpenAPI description and the ops routes."""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import TypeAdapter

from services.contract.events import ScanEvent
from services.contract.json_schemas import BatchRequest
from services.ingest.api.deps import IngestContext
from services.ingest.api.epcis import router as epcis_router
from services.ingest.api.errors import install_error_handlers
from services.ingest.api.events import router as events_router
from services.ingest.api.webhooks import router as webhooks_router
from services.ingest.domain.receipts import ReceiptWebhook
from services.web.openapi import component_schemas, install_openapi
from services.web.ops import ReadinessCheck, install_ops_routes

__all__ = ["IngestContext", "create_app"]


def create_app(context: IngestContext, checks: dict[str, ReadinessCheck]) -> FastAPI:
    app = FastAPI(
        title="Battery Custody — ingest",
        version="0.1.0",
        description="Scanner events and plant webhooks in; Kafka out (acks=all).",
    )
    install_error_handlers(app)
    install_ops_routes(app, checks)

    app.state.ingest = context
    app.include_router(events_router)
    app.include_router(webhooks_router)
    app.include_router(epcis_router)
    install_openapi(
        app,
        {
            **component_schemas("ScanEvent", TypeAdapter(ScanEvent)),
            **component_schemas("BatchRequest", BatchRequest),
            **component_schemas("ReceiptWebhook", ReceiptWebhook),
        },
    )
    return app
