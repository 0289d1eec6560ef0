"""Integers beyond what PostgreSQL holds (``bigint``, ``MAX_BIGINT``): a 422 problem naming the
parameter, never a 500, on every route; in a cursor, a 400 ``Bad cursor`` like any other cursor
this API did not issue.

The routes and their integer parameters (query or path) are read from each app's own OpenAPI
description, so a new one is swept as soon as it is served, and the known ones must be among
those found, so the walk cannot pass by finding nothing. Every other required parameter names
something recorded (the container, its event, the signed tree size), so without its bound a
request would reach the database. Routes the description leaves out (the UI) must take no
integer at all, or they would escape the walk.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI
from fastapi.dependencies.utils import get_flat_params
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient

from services.bootstrap import build_ingest_app, build_ledger_api
from services.web.cursors import encode_container_cursor
from services.web.parameters import MAX_BIGINT
from services.web.problems import PROBLEM_JSON
from tests.support import events as ev
from tests.support.recorded_ledger import RecordedLedger, record_ledger
from tests.support.stack import LiveStack

pytestmark = pytest.mark.integration

Service = Literal["ledger", "ingest"]
SERVICES: tuple[Service, ...] = ("ledger", "ingest")
#: 20 digits, and the first integer past bigint.
BEYOND = {"10**20": 10**20, "MAX_BIGINT + 1": MAX_BIGINT + 1}

#: (service, method, OpenAPI path, location, name): the walk must find at least these.
KNOWN = {
    ("ledger", "GET", "/v1/containers/{container_id}/bundle", "query", "trusted_size"),
    ("ledger", "GET", "/v1/events/{event_id}/proof", "query", "tree_size"),
    ("ledger", "GET", "/v1/checkpoints/consistency", "query", "first"),
    ("ledger", "GET", "/v1/checkpoints/consistency", "query", "second"),
    ("ledger", "GET", "/v1/containers", "query", "limit"),
    ("ledger", "GET", "/v1/containers.csv", "query", "limit"),
    ("ledger", "GET", "/v1/anomalies", "query", "limit"),
    ("ledger", "GET", "/v1/events", "query", "limit"),
    ("ledger", "GET", "/v1/webhook-deliveries", "query", "limit"),
}


@dataclass
class Env:
    recorded: RecordedLedger
    clients: dict[Service, TestClient]

    def headers(self, service: Service) -> dict[str, str]:
        network = self.recorded.network
        return network.auditor_headers() if service == "ledger" else network.headers("site-a-dev")

    def app(self, service: Service) -> FastAPI:
        app = self.clients[service].app
        assert isinstance(app, FastAPI)
        return app


@pytest.fixture(scope="module")
def env(stack: LiveStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    recorded = record_ledger(stack, tmp_path_factory.mktemp("integers"))
    settings = recorded.settings
    # A server error is answered as the 500 it would be, so the sweep can list every one.
    with (
        TestClient(build_ingest_app(settings), raise_server_exceptions=False) as ingest,
        TestClient(
            build_ledger_api(settings), follow_redirects=False, raise_server_exceptions=False
        ) as ledger,
    ):
        yield Env(recorded, {"ledger": ledger, "ingest": ingest})


@dataclass(frozen=True)
class Operation:
    service: Service
    method: str
    path: str  # as the OpenAPI description writes it
    parameters: tuple[dict[str, Any], ...]  # path and query only


@dataclass(frozen=True)
class IntegerParameter:
    operation: Operation
    location: str  # "query" or "path"
    name: str
    maximum: int | None

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        op = self.operation
        return (op.service, op.method, op.path, self.location, self.name)

    def __str__(self) -> str:
        return f"{self.operation.method} {self.operation.path} ({self.location} {self.name})"


def integer_schema(schema: dict[str, Any]) -> dict[str, Any] | None:
    """The integer (or list-of-integer) part of a parameter's schema, if it has one."""
    if schema.get("type") == "integer":
        return schema
    if schema.get("type") == "array":
        return integer_schema(schema.get("items", {}))
    for option in schema.get("anyOf", []) + schema.get("oneOf", []):
        found = integer_schema(option)
        if found is not None:
            return found
    return None


def operations(env: Env, service: Service) -> list[Operation]:
    found = []
    for path, item in env.app(service).openapi()["paths"].items():
        shared = item.get("parameters", [])
        for method, operation in item.items():
            if method == "parameters":
                continue
            parameters = tuple(
                p
                for p in [*shared, *operation.get("parameters", [])]
                if p["in"] in ("path", "query")
            )
            found.append(Operation(service, method.upper(), path, parameters))
    return found


def integer_parameters(env: Env) -> list[IntegerParameter]:
    found = []
    for service in SERVICES:
        for operation in operations(env, service):
            for parameter in operation.parameters:
                schema = integer_schema(parameter["schema"])
                if schema is not None:
                    maximum = schema.get("maximum")
                    found.append(
                        IntegerParameter(operation, parameter["in"], parameter["name"], maximum)
                    )
    return found


#: The value of each EPCIS resource form's ``{value}``, by its collection.
EPCIS_RESOURCES = {
    "eventTypes": "AggregationEvent",
    "bizSteps": "collecting",
    "bizLocations": "loc-1",
    "readPoints": "loc-1",
    "dispositions": "disposed",
}


def sample(env: Env, parameter: dict[str, Any], path: str) -> str:
    """A valid value, naming something recorded, for a parameter not under test."""
    recorded = env.recorded
    if parameter["name"] == "value":  # /epcis/{collection}/{value}/events
        return EPCIS_RESOURCES.get(path.split("/")[2], recorded.container_id)
    if integer_schema(parameter["schema"]) is not None:
        return str(recorded.tree_size)  # a signed checkpoint's size: valid for every size
    samples = {
        "container_id": recorded.container_id,
        "event_id": recorded.event_id,
        "shipment_id": recorded.shipment_id,
        "party_id": "plant-a",
        "from": ev.at(-24),
        "to": ev.at(48),
        "query_name": "no-such-query",  # its paging is refused before the name is looked up
    }
    name = parameter["name"]
    if name not in samples:
        pytest.fail(f"no sample value for the required parameter {name!r}: add one to sample()")
    return samples[name]


def send(env: Env, target: IntegerParameter, value: int) -> httpx.Response:
    """``target`` set to ``value``; every other required path or query parameter valid."""
    operation = target.operation
    path, query = operation.path, {}
    for parameter in operation.parameters:
        name, location = parameter["name"], parameter["in"]
        if (location, name) == (target.location, target.name):
            given = str(value)
        elif location == "path" or parameter.get("required"):
            given = sample(env, parameter, operation.path)
        else:
            continue
        if location == "path":
            path = path.replace(f"{{{name}}}", quote(given, safe=""))
        else:
            query[name] = given
    client = env.clients[operation.service]
    response: httpx.Response = client.request(
        operation.method, path, params=query, headers=env.headers(operation.service)
    )
    return response


def refusal_problem(response: httpx.Response, target: IntegerParameter) -> str | None:
    """What is wrong with ``response`` as the 422 problem naming ``target``; None if nothing.

    The ledger's EPCIS query interface answers as the EPCIS bindings say instead: 400
    ``epcisException:QueryParameterException`` naming the parameter in its detail."""
    answer = f"{response.status_code} {response.headers.get('content-type')}: {response.text[:300]}"
    operation = target.operation
    if operation.service == "ledger" and operation.path.startswith("/epcis/"):
        body = response.json() if response.status_code == 400 else {}
        if body.get("type") != "epcisException:QueryParameterException":
            return f"expected a 400 QueryParameterException, got {answer}"
        if not str(body.get("detail", "")).startswith(f"{target.name}:"):
            return f"the problem does not name {target.name}: {answer}"
        return None
    if response.status_code != 422:
        return f"expected 422, got {answer}"
    if response.headers.get("content-type") != PROBLEM_JSON:
        return f"expected {PROBLEM_JSON}, got {answer}"
    body = response.json()
    paths = [item.get("path") for item in body.get("errors") or []]
    if body.get("status") != 422 or f"{target.location}.{target.name}" not in paths:
        return f"the problem does not name {target.location}.{target.name}: {answer}"
    return None


def test_the_walk_finds_every_known_integer_parameter_and_each_has_a_bigint_bound(
    env: Env,
) -> None:
    found = integer_parameters(env)
    missing = KNOWN - {parameter.key for parameter in found}
    assert not missing, f"the OpenAPI walk no longer finds {sorted(missing)}"
    unbounded = [
        f"{parameter}: maximum {parameter.maximum}"
        for parameter in found
        if parameter.maximum is None or parameter.maximum > MAX_BIGINT
    ]
    assert not unbounded, "integer parameters without le=MAX_BIGINT (or tighter):\n" + "\n".join(
        unbounded
    )


@pytest.mark.parametrize("value", BEYOND.values(), ids=BEYOND.keys())
def test_integers_beyond_bigint_are_refused_with_a_422_naming_the_parameter(
    env: Env, value: int
) -> None:
    found = integer_parameters(env)
    assert {parameter.key for parameter in found} >= KNOWN
    failures = []
    for target in found:
        problem = refusal_problem(send(env, target, value), target)
        if problem is not None:
            failures.append(f"{target}={value}: {problem}")
    assert not failures, f"{len(failures)} of {len(found)} integer parameters:\n" + "\n".join(
        failures
    )


def test_the_largest_bigint_is_answered_without_a_server_error(env: Env) -> None:
    """At exactly ``MAX_BIGINT`` the bound lets the value through, and PostgreSQL holds it."""
    at_the_bound = [p for p in integer_parameters(env) if p.maximum == MAX_BIGINT]
    assert {p.name for p in at_the_bound} >= {"trusted_size", "tree_size", "first", "second"}
    failures = []
    for target in at_the_bound:
        response = send(env, target, MAX_BIGINT)
        answer = f"{response.status_code} {response.headers.get('content-type')}: "
        answer += response.text[:300]
        if response.status_code >= 500:
            failures.append(f"{target}={MAX_BIGINT}: {answer}")
        elif response.status_code >= 400:  # 404: no checkpoint that size; 422: first > second
            refused = [item["path"] for item in response.json().get("errors") or []]
            if response.headers["content-type"] != PROBLEM_JSON:
                failures.append(f"{target}={MAX_BIGINT}: {answer}")
            elif f"{target.location}.{target.name}" in refused:
                failures.append(f"{target}={MAX_BIGINT} is refused by its bound: {answer}")
    assert not failures, "\n".join(failures)


FORGED_NUMBERS = ["9" * 20, str(MAX_BIGINT + 1), "-" + "9" * 19, "²", "1_0", " 1"]


@pytest.mark.parametrize(
    ("path", "cursor"),
    [
        *(("/v1/events", number) for number in FORGED_NUMBERS),
        *(
            ("/v1/webhook-deliveries", encode_container_cursor(f"d:{number}"))
            for number in FORGED_NUMBERS
        ),
    ],
)
def test_a_cursor_with_a_number_beyond_bigint_is_a_bad_cursor(
    env: Env, path: str, cursor: str
) -> None:
    response = env.clients["ledger"].get(
        path, params={"cursor": cursor}, headers=env.headers("ledger")
    )
    assert response.status_code == 400, f"{response.status_code}: {response.text[:300]}"
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["title"] == "Bad cursor"


def test_a_cursor_at_the_largest_bigint_is_an_empty_last_page(env: Env) -> None:
    client, headers = env.clients["ledger"], env.headers("ledger")
    events = client.get("/v1/events", params={"cursor": str(MAX_BIGINT)}, headers=headers)
    assert (events.status_code, events.json()["items"]) == (200, []), events.text
    cursor = encode_container_cursor(f"d:{MAX_BIGINT}")
    deliveries = client.get("/v1/webhook-deliveries", params={"cursor": cursor}, headers=headers)
    assert (deliveries.status_code, deliveries.json()["items"]) == (200, []), deliveries.text


def takes_an_integer(annotation: Any) -> bool:
    if annotation is int or (isinstance(annotation, type) and issubclass(annotation, int)):
        return annotation is not bool
    origin = typing.get_origin(annotation)
    if origin is None and not isinstance(annotation, types.UnionType):
        return False
    return any(takes_an_integer(argument) for argument in typing.get_args(annotation))


@pytest.mark.parametrize("service", SERVICES)
def test_routes_outside_the_description_take_no_integer(env: Env, service: Service) -> None:
    """The walk above sees only described routes; an integer on another one would escape it."""
    hidden = []
    for route in iter_route_contexts(env.app(service).routes):
        dependant = getattr(route, "dependant", None)
        if dependant is None or route.include_in_schema:
            continue
        for field in get_flat_params(dependant):
            if takes_an_integer(field.field_info.annotation):
                hidden.append(f"{route.path}: {field.alias}")
    assert not hidden, (
        "integer parameters on routes left out of the OpenAPI description; bound them "
        f"(le=MAX_BIGINT) and extend this test to send them: {hidden}"
    )
