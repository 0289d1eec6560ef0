"""Property-based API tests (schemathesis) against both services running as processes.

Every operation of each service's own OpenAPI description gets generated requests, valid and
invalid, sent over HTTP with real credentials: a device token at ingest (plant webhooks signed
with the plant's secret), an auditor token at the ledger (some ledger cases with an admin
token). The answers must never be server errors and must match the description: documented
status codes, content types, headers and response schemas.

Bounded: 25 generated examples per operation (fuzzing phase; the slower coverage phase is off)
and a 5 s deadline per example, so both services are swept in under a minute on two cores.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from services.bootstrap import build_ledger_api
from services.ingest.api.app import create_app as create_ingest_app
from services.settings import Settings
from tests.support.recorded_ledger import RecordedLedger, record_ledger
from tests.support.services import running
from tests.support.stack import LiveStack
from tests.support.webhook_signing import signed_headers

pytestmark = pytest.mark.e2e

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
CONFIG = schemathesis.Config.from_dict(
    {"seed": 7, "generation": {"max-examples": 25}, "phases": {"coverage": {"enabled": False}}}
)
BOUNDED = settings(
    max_examples=25,
    deadline=5000,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)


@dataclass
class System:
    recorded: RecordedLedger
    ingest_url: str
    ledger_url: str


@pytest.fixture(scope="module")
def system(stack: LiveStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    folder = tmp_path_factory.mktemp("schemathesis")
    recorded = record_ledger(stack, folder)
    with running(recorded.settings, ["ingest", "ledger"], folder) as services:
        ingest, ledger = services["ingest"].url, services["ledger"].url
        assert ingest is not None
        assert ledger is not None
        yield System(recorded, ingest, ledger)


# The descriptions the services serve, built from the same code without connecting anywhere;
# a test below checks the running services serve exactly these.
INGEST_OPENAPI = create_ingest_app(None, {}).openapi()  # type: ignore[arg-type]
LEDGER_OPENAPI = build_ledger_api(Settings()).openapi()
ingest = schemathesis.openapi.from_dict(INGEST_OPENAPI, config=CONFIG)
ledger = schemathesis.openapi.from_dict(LEDGER_OPENAPI, config=CONFIG)


def body_bytes(case: Any, base_url: str) -> bytes:
    """The exact bytes the case will send, so that they can be signed."""
    kwargs = case.as_transport_kwargs(base_url=base_url)
    if "json" in kwargs:
        return json.dumps(kwargs["json"]).encode()
    data = kwargs.get("data") or b""
    return data if isinstance(data, bytes) else str(data).encode()


@ingest.parametrize()
@BOUNDED
def test_ingest_conforms_to_its_openapi(case: Any, system: System) -> None:
    recorded = system.recorded
    if case.path.startswith("/v1/webhooks/"):
        raw = body_bytes(case, system.ingest_url)
        try:
            headers = signed_headers(raw, recorded.plant_secret)
        except UnicodeDecodeError:  # no plant signs bytes that are not text; refused unread
            headers = {**signed_headers(b"{}", recorded.plant_secret), "webhook-id": "not-utf8"}
        case.call_and_validate(base_url=system.ingest_url, headers=headers, data=raw, checks=CHECKS)
        return
    headers = recorded.network.headers("site-a-dev")
    case.call_and_validate(base_url=system.ingest_url, headers=headers, checks=CHECKS)


@ledger.parametrize()
@BOUNDED
def test_ledger_conforms_to_its_openapi(case: Any, system: System) -> None:
    network = system.recorded.network
    admin_paths = ("/v1/reports/", "/v1/admin/")
    token = network.admin if case.path.startswith(admin_paths) else network.auditor
    case.call_and_validate(
        base_url=system.ledger_url,
        headers={"Authorization": f"Bearer {token}"},
        checks=CHECKS,
    )


def test_the_running_services_serve_these_descriptions(system: System) -> None:
    for url, document in ((system.ingest_url, INGEST_OPENAPI), (system.ledger_url, LEDGER_OPENAPI)):
        served = httpx.get(f"{url}/openapi.json", timeout=10)
        assert served.status_code == 200
        assert served.json() == json.loads(json.dumps(document))
