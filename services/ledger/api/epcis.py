"""The EPCIS 2.0 query interface: events, resource forms, named queries and subscriptions
(GS1 EPCIS 2.0 REST bindings; docs/epcis.md). Any API reader, each within its scope:
queries and subscriptions made by a scoped token read its containers only.

Every answer carries ``GS1-EPCIS-Version`` and ``GS1-CBV-Version``; every problem's ``type``
is the EPCIS exception (``epcisException:QueryParameterException`` …).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine
from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode
from uuid import UUID, uuid4

import orjson
from fastapi import APIRouter, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from services.contract.epcis_schema import QUERY_SCHEMA, schema_errors
from services.ledger.adapters.epcis_queries import (
    EpcisQueryStore,
    NamedQuery,
    QueryExists,
    Subscription,
)
from services.ledger.api.dependencies import Reader
from services.ledger.domain.epcis_query import (
    PAGING,
    PER_PAGE_MAX,
    SUPPORTED,
    TIME_PARAMETERS,
    QueryParameterError,
    Terms,
    event_filter,
    next_page_token,
    per_page,
    query_digest,
    read_page_token,
    terms_from_json,
    terms_from_query_string,
)
from services.ledger.domain.epcis_subscription import SubscriptionError, parse_subscription
from services.ledger.domain.integrity.hashing import format_instant
from services.ledger.domain.query_schedule import next_fire
from services.ledger.readside import ReadSide
from services.ledger.rendering.epcis import epcis_events, epcis_query_document
from services.registry.principals import ApiUser
from services.registry.store import RegistryStore
from services.web.epcis import VERSION_HEADERS, epcis_problem
from services.web.openapi import problem_responses
from services.web.problems import Problem

MAX_TERM_CHARS = 200
"""Characters in one query-string value or resource path value (repeat a parameter for more
values). The HTTP server refuses request lines over 65,535 bytes with a bare 400; with every
documented parameter at this length, even in 4-byte characters percent-encoded, the URL stays
under that, so every query reaches the parser and gets an EPCIS answer."""
QUERY_NAME = re.compile(r"[A-Za-z0-9._~-]{1,128}")
SUBSCRIPTION_BATCH = 100
MAX_QUERY_BODY = 64 * 1024

QueryName = Annotated[str, Path(max_length=128, description="The named query.")]
ResourceValue = Annotated[str, Path(max_length=MAX_TERM_CHARS, description="The resource's value.")]


def _parameter_doc(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string", "maxLength": MAX_TERM_CHARS}
    if name in TIME_PARAMETERS:
        schema["format"] = "date-time"
    elif name == "EXISTS_errorDeclaration":
        schema = {"type": "boolean"}
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": "EPCIS 2.0 query parameter (docs/epcis.md); list values "
        "pipe-delimited (a|b).",
    }


_QUERY_PARAMETERS = [
    *(_parameter_doc(name) for name in SUPPORTED),
    {
        "name": "perPage",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": PER_PAGE_MAX, "default": 100},
    },
    {
        "name": "nextPageToken",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "maxLength": 128},
        "description": "From the previous page's Link header; valid for one hour.",
    },
]
_DOCUMENT = {
    "description": "An EPCISQueryDocument (GS1's query schema). Paged: the Link header "
    'names the next page (rel="next") and GS1-Next-Page-Token-Expires its expiry.',
    "content": {"application/json": {"schema": {"type": "object"}}},
}
_QUERY_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: _DOCUMENT,
    **problem_responses(400, 404),
}
_JSON_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}


def _query_problem(detail: str) -> Problem:
    return epcis_problem(400, "QueryParameterException", "Invalid EPCIS query", detail)


def _not_found(what: str) -> Problem:
    return epcis_problem(404, "NoSuchResourceException", "Not found", what)


def _query_terms(request: Request) -> dict[str, list[str]]:
    pairs = request.query_params.multi_items()
    for name, value in pairs:
        if len(value) > MAX_TERM_CHARS:
            raise _query_problem(
                f"{name[:64]}: at most {MAX_TERM_CHARS} characters a value "
                "(repeat the parameter for more values)"
            )
    return terms_from_query_string(pairs)


def _validated_query(query: object) -> dict[str, Any]:
    """A named query's ``query``: understood by us, and valid against GS1's query schema."""
    if not isinstance(query, dict):
        raise epcis_problem(
            400, "QueryValidationException", "Invalid EPCIS query", "query: give an object"
        )
    try:
        event_filter(terms_from_json(query))
    except QueryParameterError as error:
        raise _query_problem(str(error)) from None
    paging = sorted(PAGING & set(query))
    if paging:
        raise _query_problem(f"query: {paging[0]} belongs in the URL of a page, not in a query")
    as_schema_sees_it = {  # GS1's schema types EXISTS_ parameters as integers, the API as booleans
        name: int(value) if isinstance(value, bool) else value for name, value in query.items()
    }
    errors = schema_errors(as_schema_sees_it, QUERY_SCHEMA)
    if errors:
        path, message = errors[0]
        raise epcis_problem(
            400,
            "QueryValidationException",
            "Invalid EPCIS query",
            f"query.{path or '(query)'}: {message[:300]}",
        )
    return query


def _subscription_json(subscription: Subscription) -> dict[str, Any]:
    """As the bindings show a subscription: never its signatureToken."""
    shown: dict[str, Any] = {
        "subscriptionID": str(subscription.subscription_id),
        "dest": subscription.dest,
        "createdAt": format_instant(subscription.created_at),
    }
    if subscription.stream:
        shown["stream"] = True
    else:
        shown["schedule"] = subscription.schedule
        shown["reportIfEmpty"] = subscription.report_if_empty
    if subscription.initial_record_time is not None:
        shown["initialRecordTime"] = format_instant(subscription.initial_record_time)
    if subscription.last_notified_at is not None:
        shown["lastNotifiedAt"] = format_instant(subscription.last_notified_at)
    shown["signed"] = subscription.signature_token is not None
    shown["pendingAfterSeq"] = subscription.after_seq
    if subscription.last_error is not None:
        shown["lastError"] = subscription.last_error
        shown["nextAttemptAt"] = format_instant(subscription.next_attempt_at)
    return shown


async def _json_body(request: Request) -> object:
    raw = await request.body()
    if len(raw) > MAX_QUERY_BODY:
        raise epcis_problem(
            413, "QueryTooLargeException", "Too large", f"the body is over {MAX_QUERY_BODY} bytes"
        )
    try:
        return orjson.loads(raw)
    except ValueError:
        raise epcis_problem(
            400, "ValidationException", "Invalid JSON", "the body is not JSON"
        ) from None


def epcis_router(read_side: ReadSide, registry: RegistryStore, store: EpcisQueryStore) -> APIRouter:
    router = APIRouter(prefix="/epcis", tags=["EPCIS queries"])

    async def query_page(
        request: Request, reader: ApiUser, terms: Terms, resource: str
    ) -> tuple[list[dict[str, Any]], dict[str, str], datetime]:
        """(events, headers, now) of a query's page, read within the reader's scope; its page
        token is bound to the query and to the reader's token."""
        now = datetime.now(UTC)
        digest = query_digest(terms, f"{resource}|{reader.token_id}")
        try:
            flt = replace(event_filter(terms), scope=reader.scope)
            limit = per_page(terms)
            tokens = terms.get("nextPageToken")
            after = read_page_token(tokens[0], digest, now) if tokens else None
        except QueryParameterError as error:
            raise _query_problem(str(error)) from None
        roles = await run_in_threadpool(registry.party_roles)
        page = await run_in_threadpool(
            lambda: read_side.events.page(
                flt, party_roles=roles, after_seq=after, limit=limit, now=now
            )
        )
        events = epcis_events(
            page.entries, page.trails, party_roles=roles, declared_only=flt.corrected_only
        )
        headers = dict(VERSION_HEADERS)
        if len(page.entries) == limit:
            token = next_page_token(page.entries[-1].seq, digest, now)
            pairs = [
                (name, value)
                for name, value in request.query_params.multi_items()
                if name != "nextPageToken"
            ]
            pairs.append(("nextPageToken", token.encode()))
            headers["Link"] = f'<{request.url.path}?{urlencode(pairs)}>; rel="next"'
            headers["GS1-Next-Page-Token-Expires"] = format_instant(token.expires)
        return events, headers, now

    async def answer(
        request: Request, reader: ApiUser, terms: Terms, resource: str = ""
    ) -> JSONResponse:
        events, headers, now = await query_page(request, reader, terms, resource)
        return JSONResponse(epcis_query_document(events, created=now), headers=headers)

    def resource_terms(request: Request, name: str, value: str) -> dict[str, list[str]]:
        terms = _query_terms(request)
        if name in terms:
            raise _query_problem(f"{name} is given by the path; do not repeat it in the query")
        terms[name] = [value]
        return terms

    @router.get(
        "/events",
        summary="EPCIS events matching a query (SimpleEventQuery parameters)",
        responses=_QUERY_RESPONSES,
        openapi_extra={"parameters": _QUERY_PARAMETERS},
    )
    async def events(request: Request, reader: Reader) -> JSONResponse:
        return await answer(request, reader, _query_terms(request))

    @router.get(
        "/events/{event_id:path}",
        summary="One EPCIS event by its eventID (urn:uuid:…)",
        responses=_QUERY_RESPONSES,
    )
    async def event(request: Request, reader: Reader, event_id: Annotated[str, Path()]) -> Response:
        if request.query_params:
            raise _query_problem("this resource takes no query parameters")
        events, headers, now = await query_page(
            request, reader, {"EQ_eventID": [event_id]}, "event"
        )
        if not events:
            raise _not_found(f"no event {event_id}")
        return JSONResponse(epcis_query_document(events, created=now), headers=headers)

    resource_forms = {
        "eventTypes": ("eventType", "event type (ObjectEvent, AggregationEvent, …)"),
        "epcs": ("MATCH_anyEPC", "EPC: a container id or its URI"),
        "bizSteps": ("EQ_bizStep", "bizStep (CBV short name or URI)"),
        "bizLocations": ("EQ_bizLocation", "bizLocation: a location id or its URI"),
        "readPoints": ("EQ_readPoint", "readPoint: a location id or its URI"),
        "dispositions": ("EQ_disposition", "disposition (CBV short name or URI)"),
    }

    def resource_handler(
        collection: str, parameter: str
    ) -> Callable[..., Coroutine[Any, Any, JSONResponse]]:
        async def handler(request: Request, reader: Reader, value: ResourceValue) -> JSONResponse:
            terms = resource_terms(request, parameter, value)
            return await answer(request, reader, terms, collection)

        return handler

    for collection, (parameter, what) in resource_forms.items():
        router.add_api_route(
            f"/{collection}/{{value:path}}/events",
            resource_handler(collection, parameter),
            methods=["GET"],
            summary=f"EPCIS events by {what} (the query's {parameter})",
            responses=_QUERY_RESPONSES,
            openapi_extra={"parameters": [p for p in _QUERY_PARAMETERS if p["name"] != parameter]},
        )

    # --- named queries ---

    @router.post(
        "/queries",
        status_code=201,
        summary="Create a named query",
        responses=problem_responses(400, 409, 413),
        openapi_extra=_JSON_BODY,
    )
    async def create_query(request: Request, reader: Reader) -> Response:
        body = await _json_body(request)
        if not isinstance(body, dict) or set(body) != {"name", "query"}:
            raise epcis_problem(
                400, "ValidationException", "Invalid named query", 'give {"name", "query"}'
            )
        name = body["name"]
        if not isinstance(name, str) or not QUERY_NAME.fullmatch(name):
            raise epcis_problem(
                400,
                "ValidationException",
                "Invalid named query",
                "name: 1 to 128 of A–Z, a–z, 0–9 and . _ ~ -",
            )
        query = _validated_query(body["query"])
        try:
            await run_in_threadpool(store.create_query, name, query, reader.token_id)
        except QueryExists:
            raise epcis_problem(
                409, "ResourceAlreadyExistsException", "Exists", f"a query {name!r} exists"
            ) from None
        return Response(
            status_code=201, headers={**VERSION_HEADERS, "Location": f"/epcis/queries/{name}"}
        )

    @router.get("/queries", summary="The named queries")
    async def list_queries(_: Reader) -> JSONResponse:
        found = await run_in_threadpool(lambda: store.queries(limit=1000))
        return JSONResponse(
            [{"name": item.name, "query": item.query} for item in found], headers=VERSION_HEADERS
        )

    def named(name: str) -> NamedQuery:
        found = store.query(name)
        if found is None:
            raise _not_found(f"no query {name!r}")
        return found

    @router.get(
        "/queries/{query_name}",
        summary="A named query's definition",
        responses=problem_responses(404),
    )
    async def get_query(_: Reader, query_name: QueryName) -> JSONResponse:
        found = await run_in_threadpool(named, query_name)
        return JSONResponse({"name": query_name, "query": found.query}, headers=VERSION_HEADERS)

    @router.delete(
        "/queries/{query_name}",
        status_code=204,
        summary="Delete a named query and end its subscriptions",
        responses=problem_responses(404),
    )
    async def delete_query(reader: Reader, query_name: QueryName) -> Response:
        found = await run_in_threadpool(named, query_name)
        if reader.scoped and found.created_by != reader.token_id:
            raise epcis_problem(
                403,
                "SecurityException",
                "Forbidden",
                "a scoped token deletes only the named queries it made",
            )
        if not await run_in_threadpool(store.delete_query, query_name):
            raise _not_found(f"no query {query_name!r}")
        return Response(status_code=204, headers=VERSION_HEADERS)

    @router.get(
        "/queries/{query_name}/events",
        summary="The events a named query selects",
        responses=_QUERY_RESPONSES,
        openapi_extra={"parameters": _QUERY_PARAMETERS[-2:]},
    )
    async def named_events(request: Request, reader: Reader, query_name: QueryName) -> JSONResponse:
        extra = _query_terms(request)
        unexpected = sorted(set(extra) - PAGING)
        if unexpected:
            raise _query_problem(f"{unexpected[0]}: a named query's events take only paging")
        try:
            per_page(extra)
        except QueryParameterError as error:
            raise _query_problem(str(error)) from None
        found = await run_in_threadpool(named, query_name)
        terms = {**terms_from_json(found.query), **extra}
        return await answer(request, reader, terms, f"query:{query_name}")

    # --- subscriptions ---

    def mine(reader: ApiUser, subscription: Subscription) -> bool:
        """A scoped token sees only the subscriptions it made; unscoped ones see all."""
        return not reader.scoped or subscription.created_by == reader.token_id

    @router.post(
        "/queries/{query_name}/subscriptions",
        status_code=201,
        summary="Subscribe to a named query (stream or schedule)",
        responses=problem_responses(400, 404, 413),
        openapi_extra=_JSON_BODY,
    )
    async def subscribe(request: Request, reader: Reader, query_name: QueryName) -> JSONResponse:
        await run_in_threadpool(named, query_name)
        try:
            wanted = parse_subscription(await _json_body(request))
        except SubscriptionError as error:
            raise epcis_problem(
                400, "SubscriptionControlsException", "Invalid subscription", str(error)
            ) from None
        now = datetime.now(UTC)
        if wanted.initial_record_time is not None:
            after_seq = await run_in_threadpool(
                read_side.events.last_seq_before, wanted.initial_record_time
            )
        else:
            after_seq = await run_in_threadpool(read_side.events.last_seq)
        first_due = (
            now if wanted.parsed_schedule is None else next_fire(wanted.parsed_schedule, now) or now
        )
        subscription_id = uuid4()
        created = await run_in_threadpool(
            store.subscribe,
            {
                "subscription_id": subscription_id,
                "query_name": query_name,
                "dest": wanted.dest,
                "signature_token": wanted.signature_token,
                "stream": wanted.stream,
                "schedule": wanted.schedule,
                "report_if_empty": wanted.report_if_empty,
                "initial_record_time": wanted.initial_record_time,
                "created_by": reader.token_id,
                "after_seq": after_seq,
                "batch_size": SUBSCRIPTION_BATCH,
                "next_attempt_at": first_due,
            },
        )
        location = f"/epcis/queries/{query_name}/subscriptions/{subscription_id}"
        return JSONResponse(
            _subscription_json(created),
            201,
            headers={**VERSION_HEADERS, "Location": location},
        )

    @router.get(
        "/queries/{query_name}/subscriptions",
        summary="A named query's subscriptions",
        responses=problem_responses(404),
    )
    async def subscriptions(reader: Reader, query_name: QueryName) -> JSONResponse:
        await run_in_threadpool(named, query_name)
        found = [
            item
            for item in await run_in_threadpool(store.subscriptions, query_name)
            if mine(reader, item)
        ]
        return JSONResponse([_subscription_json(item) for item in found], headers=VERSION_HEADERS)

    @router.get(
        "/queries/{query_name}/subscriptions/{subscription_id}",
        summary="One subscription",
        responses=problem_responses(404),
    )
    async def subscription(
        reader: Reader, query_name: QueryName, subscription_id: UUID
    ) -> JSONResponse:
        found = await run_in_threadpool(store.subscription, query_name, subscription_id)
        if found is None or not mine(reader, found):
            raise _not_found(f"no subscription {subscription_id} of query {query_name!r}")
        return JSONResponse(_subscription_json(found), headers=VERSION_HEADERS)

    @router.delete(
        "/queries/{query_name}/subscriptions/{subscription_id}",
        status_code=204,
        summary="Unsubscribe",
        responses=problem_responses(404),
    )
    async def unsubscribe(reader: Reader, query_name: QueryName, subscription_id: UUID) -> Response:
        found = await run_in_threadpool(store.subscription, query_name, subscription_id)
        if found is None or not mine(reader, found):
            raise _not_found(f"no subscription {subscription_id} of query {query_name!r}")
        if not await run_in_threadpool(store.unsubscribe, query_name, subscription_id):
            raise _not_found(f"no subscription {subscription_id} of query {query_name!r}")
        return Response(status_code=204, headers=VERSION_HEADERS)

    return router
