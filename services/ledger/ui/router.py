"""The auditor web UI at ``/ui/``: server-rendered pages over the ledger's read side.

No JavaScript and nothing from another origin (fonts, styles and charts are all local; charts
are inline SVG), so it works offline and with scripts disabled.

Signing in posts an auditor or admin token once; it is kept in an HttpOnly, SameSite=Strict
cookie scoped to ``/ui`` and checked against the registry on every page, exactly like the
API's bearer tokens. Downloads (CSV, EPCIS, bundle, certificate) and the mass-balance report
are the API's own responses, fetched in-process with the session's token, so the UI never
re-implements what the API answers; where the reports are served, the API's app says
(``ReportRoutes``, from its reports router).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs

import httpx
from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.exceptions import HTTPException

from services.contract.events import ContainerId, Intake, Pickup
from services.ledger.domain.custody import AnomalyCode, ContainerState, CustodyTrail
from services.ledger.domain.integrity.checkpoint import CheckpointError, VerifierKey
from services.ledger.domain.integrity.verification import BundleError, verify_bundle
from services.ledger.readside import ReadSide
from services.ledger.readside.containers import ContainerFilter
from services.ledger.readside.proofs import ProofUnavailable
from services.ledger.ui import views
from services.ledger.ui.timeline import build_timeline
from services.registry.principals import ApiRole, ApiUser
from services.registry.store import RegistryStore
from services.web.cursors import encode_container_cursor
from services.web.parameters import PRINTABLE

COOKIE = "custody_ui_token"
COOKIE_PATH = "/ui"
PAGE_SIZE = 50
ANOMALY_PAGE = 25
OURS_PER_SECTION = 25
AUDIT_PAGE = 100
MASS_BALANCE_GROUPS = ("site", "plant", "chemistry")
_HERE = Path(__file__).resolve().parent
_STATIC = {"ui.css": ("text/css", _HERE / "static" / "ui.css")}
_MAX_FORM_BYTES = 4096
_TOKEN = re.compile(r"[A-Za-z0-9_-]{8,200}")
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
_DOWNLOADS = {
    "csv": "/v1/containers/{container_id}/custody.csv",
    "epcis": "/v1/containers/{container_id}/custody.epcis.json",
    "bundle": "/v1/containers/{container_id}/bundle",
}


class _UIRoute(APIRoute):
    """Every UI response carries the security headers; pages are never cached."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def with_headers(request: Request) -> Response:
            response = await handler(request)
            for name, value in _SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
            response.headers.setdefault("Cache-Control", "no-store")
            return response

        return with_headers


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(_HERE / "templates"),
        autoescape=select_autoescape(["html", "svg"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(instant=views.instant, number=views.number)
    env.globals.update(query=views.query_string, summary=views.event_summary, age=views.age)
    return env


@dataclass(frozen=True, slots=True)
class Session:
    user: ApiUser
    token: str


def _cookie_header(value: str, *, secure: bool, clear: bool = False) -> str:
    parts = [f"{COOKIE}={value}", f"Path={COOKIE_PATH}", "HttpOnly", "SameSite=Strict"]
    if clear:
        parts.append("Max-Age=0")
    if secure:
        parts.append("Secure")
    return "; ".join(parts)


def _signin_redirect(request: Request, *, clear: bool) -> HTTPException:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    headers = {"Location": "/ui/signin" + views.query_string(next=views.safe_next(target))}
    if clear:
        headers["Set-Cookie"] = _cookie_header("", secure=request.url.scheme == "https", clear=True)
    return HTTPException(303, "sign in first", headers=headers)


def _api_user(registry: RegistryStore, token: str) -> ApiUser | None:
    if not _TOKEN.fullmatch(token):
        return None
    principal = registry.principal(token)
    if isinstance(principal, ApiUser) and principal.role in (
        ApiRole.AUDITOR,
        ApiRole.ADMIN,
        ApiRole.PARTY,
    ):
        return principal  # a scoped one sees its scope on every page
    return None


async def _api_get(
    request: Request, token: str, path: str, params: dict[str, str] | None = None
) -> httpx.Response:
    """The API's own answer to GET ``path``, in-process, as the signed-in auditor."""
    transport = httpx.ASGITransport(app=request.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ledger.ui") as client:
        return await client.get(path, params=params, headers={"Authorization": f"Bearer {token}"})


def shipment_of(trail: CustodyTrail) -> str | None:
    """The shipment a container travelled in: that of its first effective pickup."""
    for item in trail.events:
        if item.effective and isinstance(item.entry.event, Pickup):
            return item.entry.event.shipment_id
    return None


def certified_shipment(trail: CustodyTrail, *, signed_size: int | None) -> str | None:
    """The shipment whose certificate of recycling covers this container, if it has one.

    A certificate shows the ledger as of the latest checkpoint (``signed_size`` entries) and
    certifies the containers of its shipment taken in by then, so the container's intake must
    be covered. Decided from the trail alone: rendering a certificate to find out is far too
    slow for a page view.
    """
    intake = next(
        (
            item.entry.seq
            for item in trail.events
            if item.effective and isinstance(item.entry.event, Intake)
        ),
        None,
    )
    if intake is None or signed_size is None or intake >= signed_size:
        return None
    return shipment_of(trail) or None


async def signed_in(request: Request) -> Session:
    """The session's auditor, checked with the registry; else off to the sign-in page."""
    token = request.cookies.get(COOKIE)
    if not token:
        raise _signin_redirect(request, clear=False)
    registry: RegistryStore = request.app.state.registry
    user = await run_in_threadpool(_api_user, registry, token)
    if user is None:
        raise _signin_redirect(request, clear=True)
    return Session(user, token)


Auditor = Annotated[Session, Depends(signed_in)]


@dataclass(frozen=True, slots=True)
class ReportRoutes:
    """Where the ledger API serves the reports the UI shows, as its reports router defines them
    (given by the API's app: the UI does not import the API)."""

    mass_balance: str
    """The path of the mass-balance report."""
    certificate: Callable[[str], str]
    """The path of a shipment's certificate of recycling, from the shipment id."""


def ui_router(
    registry: RegistryStore,
    read_side: ReadSide,
    verifier_key: Callable[[], VerifierKey],
    reports: ReportRoutes,
) -> APIRouter:
    """The ``/ui`` pages; include it in the ledger API's app."""
    env = _environment()
    router = APIRouter(prefix="/ui", include_in_schema=False, route_class=_UIRoute)

    def page(
        name: str, request: Request, session: Session | None, status: int = 200, **context: Any
    ) -> HTMLResponse:
        html = env.get_template(name).render(
            request_path=request.url.path,
            user=session.user if session else None,
            **context,
        )
        return HTMLResponse(html, status_code=status)

    # --- static, sign-in, sign-out -------------------------------------------------------------

    @router.get("/static/{name}")
    async def static(name: str) -> Response:
        found = _STATIC.get(name)
        if found is None:
            raise HTTPException(404, f"no static file {name!r}")
        media_type, path = found
        response = FileResponse(path, media_type=media_type)
        response.headers["Cache-Control"] = "public, max-age=3600"
        return response

    @router.get("/signin")
    async def signin_form(
        request: Request,
        next_page: Annotated[str | None, Query(alias="next", max_length=2000)] = None,
    ) -> HTMLResponse:
        return page("signin.html", request, None, next=views.safe_next(next_page), error=None)

    @router.post("/signin")
    async def signin(request: Request) -> Response:
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > _MAX_FORM_BYTES:
                raise HTTPException(413, "the sign-in form is larger than it can be")
        form = parse_qs(body.decode("utf-8", "replace"))
        token = (form.get("token") or [""])[0].strip()
        target = views.safe_next((form.get("next") or ["/ui/"])[0])
        user = await run_in_threadpool(_api_user, registry, token) if token else None
        if user is None:
            return page(
                "signin.html",
                request,
                None,
                status=401,
                next=target,
                error="That is not a valid auditor, admin or party token (unknown, expired, "
                "revoked or a device token).",
            )
        response = RedirectResponse(target, status_code=303)
        response.headers["Set-Cookie"] = _cookie_header(token, secure=request.url.scheme == "https")
        return response

    @router.post("/signout")
    async def signout(request: Request) -> Response:
        response = RedirectResponse("/ui/signin", status_code=303)
        response.headers["Set-Cookie"] = _cookie_header(
            "", secure=request.url.scheme == "https", clear=True
        )
        return response

    # --- dashboard -----------------------------------------------------------------------------

    @router.get("/")
    async def home(request: Request, session: Auditor) -> HTMLResponse:
        now = datetime.now(UTC)
        scope = session.user.scope
        overview = await run_in_threadpool(read_side.dashboard.overview, now, scope)
        ours = (
            await run_in_threadpool(read_side.dashboard.ours, scope, now, OURS_PER_SECTION)
            if scope is not None
            else None
        )
        return page(
            "dashboard.html",
            request,
            session,
            now=now,
            overview=overview,
            ours=ours,
            scope_text=", ".join(sorted(scope)) if scope is not None else "",
            state_bars=views.hbars(overview.states),
            anomaly_bars=views.hbars((item.code, item.containers) for item in overview.anomalies),
            unprocessed={item.code: item.unprocessed for item in overview.anomalies},
            hourly=views.hourly_chart([(h.start, h.events) for h in overview.per_hour]),
            hourly_total=sum(h.events for h in overview.per_hour),
        )

    # --- container search ----------------------------------------------------------------------

    @router.get("/containers")
    async def containers(
        request: Request,
        session: Auditor,
        q: Annotated[str | None, Query(max_length=64, pattern=PRINTABLE)] = None,
        state: Annotated[str | None, Query(max_length=32)] = None,
        custodian: Annotated[str | None, Query(max_length=64, pattern=PRINTABLE)] = None,
        location: Annotated[str | None, Query(max_length=128, pattern=PRINTABLE)] = None,
        anomaly: Annotated[str | None, Query(max_length=64)] = None,
        cursor: Annotated[str | None, Query(max_length=200)] = None,
    ) -> HTMLResponse:
        now = datetime.now(UTC)
        states = [item.value for item in ContainerState]
        codes = [item.value for item in AnomalyCode]
        flt = ContainerFilter(
            ContainerState(state) if state in states else None,
            custodian or None,
            location or None,
            AnomalyCode(anomaly) if anomaly in codes else None,
        )
        prefix = (q or "").strip() or None
        after = views.decode_cursor(cursor)
        found = await run_in_threadpool(
            lambda: read_side.dashboard.search(
                flt,
                id_prefix=prefix,
                now=now,
                after=after,
                limit=PAGE_SIZE,
                scope=session.user.scope,
            )
        )
        roles = await run_in_threadpool(registry.party_roles)
        filters = {
            "q": prefix,
            "state": flt.state.value if flt.state else None,
            "custodian": flt.custodian,
            "location": flt.location,
            "anomaly": flt.anomaly.value if flt.anomaly else None,
        }
        next_cursor = (
            encode_container_cursor(found.rows[-1].container_id)
            if len(found.rows) == PAGE_SIZE
            else None
        )
        return page(
            "containers.html",
            request,
            session,
            now=now,
            page=found,
            filters=filters,
            states=states,
            codes=codes,
            parties=sorted(roles.items()),
            show_first=after is not None,
            next_link=views.query_string(**filters, cursor=next_cursor) if next_cursor else None,
            first_link=views.query_string(**filters) or "?",
        )

    # --- one container -------------------------------------------------------------------------

    def integrity(container_id: str, trail: CustodyTrail) -> dict[str, Any]:
        """The container's bundle, checked here exactly as `custody verify` checks it."""
        try:
            bundle = read_side.proofs.bundle(container_id, None)
        except ProofUnavailable as error:
            return {"status": "pending", "detail": str(error)}
        try:
            key = verifier_key()
        except CheckpointError as error:
            return {"status": "unknown", "detail": f"no verifier key: {error}"}
        try:
            report = verify_bundle(bundle, key)
        except BundleError as error:
            return {"status": "failed", "detail": str(error)}
        return {
            "status": "verified",
            "tree_size": report.checkpoint.tree_size,
            "key": f"{key.name}+{key.key_id.hex()}",
            "covered": report.entries,
            "total": len(trail.events),
            "head_seq": report.head_seq,
        }

    @router.get("/containers/{container_id}")
    async def container(
        request: Request, session: Auditor, container_id: Annotated[ContainerId, PathParam()]
    ) -> HTMLResponse:
        now = datetime.now(UTC)
        visible = await run_in_threadpool(
            read_side.containers.visible, container_id, session.user.scope
        )
        trail = (
            await run_in_threadpool(read_side.containers.trail, container_id, now=now)
            if visible
            else None
        )
        if trail is None:  # outside the reader's scope: as if it did not exist
            return page(
                "not_found.html",
                request,
                session,
                status=404,
                what=f"No recorded events for container {container_id}.",
            )
        roles = await run_in_threadpool(registry.party_roles)
        check = await run_in_threadpool(integrity, container_id, trail)
        downloads = [
            ("CSV", f"/ui/containers/{container_id}/download/csv", "custody.csv"),
            ("EPCIS 2.0 JSON-LD", f"/ui/containers/{container_id}/download/epcis", "epcis"),
        ]
        if check["status"] in ("verified", "failed"):
            downloads.append(
                ("Verifiable bundle", f"/ui/containers/{container_id}/download/bundle", "bundle")
            )
        signed = check.get("tree_size") if check["status"] == "verified" else None
        certified = certified_shipment(trail, signed_size=signed) is not None
        if certified and not session.user.scoped:  # a certificate covers every party's part
            downloads.append(
                (
                    "Certificate of recycling",
                    f"/ui/containers/{container_id}/download/certificate",
                    "certificate",
                )
            )
        by_id = {item.entry.event_id: item for item in trail.events}
        return page(
            "container.html",
            request,
            session,
            now=now,
            trail=trail,
            roles=roles,
            timeline=build_timeline(trail),
            integrity=check,
            downloads=downloads,
            by_id=by_id,
        )

    @router.get("/containers/{container_id}/download/{kind}")
    async def download(
        request: Request,
        session: Auditor,
        container_id: Annotated[ContainerId, PathParam()],
        kind: str,
    ) -> Response:
        path = _DOWNLOADS.get(kind)
        if not await run_in_threadpool(
            read_side.containers.visible, container_id, session.user.scope
        ):
            path = None
        elif path is not None:
            path = path.format(container_id=container_id)
        elif kind == "certificate":
            trail = await run_in_threadpool(
                read_side.containers.trail, container_id, now=datetime.now(UTC)
            )
            latest = await run_in_threadpool(read_side.proofs.latest)
            signed = latest.checkpoint.tree_size if latest is not None else None
            shipment = certified_shipment(trail, signed_size=signed) if trail is not None else None
            if shipment is not None:
                path = reports.certificate(shipment)
        if path is None:
            raise HTTPException(404, f"no {kind!r} download for {container_id}")
        answer = await _api_get(request, session.token, path)
        headers = {
            name: answer.headers[name]
            for name in ("content-type", "content-disposition", "link")
            if name in answer.headers
        }
        return Response(answer.content, status_code=answer.status_code, headers=headers)

    # --- anomalies -----------------------------------------------------------------------------

    @router.get("/anomalies")
    async def anomalies(
        request: Request,
        session: Auditor,
        code: Annotated[str | None, Query(max_length=64)] = None,
        cursor: Annotated[str | None, Query(max_length=200)] = None,
    ) -> HTMLResponse:
        now = datetime.now(UTC)
        chosen = AnomalyCode(code) if code in {item.value for item in AnomalyCode} else None
        after = views.decode_cursor(cursor)
        scope = session.user.scope
        trails = await run_in_threadpool(
            lambda: read_side.containers.trails_with_anomalies(
                chosen, now=now, after=after, limit=ANOMALY_PAGE, scope=scope
            )
        )
        counts = await run_in_threadpool(read_side.dashboard.anomaly_counts, now, scope)
        rows = [
            (trail, item)
            for trail in trails
            for item in trail.anomalies
            if chosen is None or item.code is chosen
        ]
        next_cursor = (
            encode_container_cursor(trails[-1].container_id)
            if len(trails) == ANOMALY_PAGE
            else None
        )
        selected = chosen.value if chosen else None
        return page(
            "anomalies.html",
            request,
            session,
            now=now,
            rows=rows,
            counts=counts,
            code=selected,
            show_first=after is not None,
            next_link=views.query_string(code=selected, cursor=next_cursor)
            if next_cursor
            else None,
            first_link=views.query_string(code=selected) or "?",
        )

    # --- the registry's audit trail -------------------------------------------------------------

    @router.get("/registry-audit")
    async def registry_audit(
        request: Request,
        session: Auditor,
        after: Annotated[str | None, Query(max_length=19, pattern="^[0-9]{1,18}$")] = None,
    ) -> HTMLResponse:
        if session.user.scoped:  # every party's registry: for unscoped readers only
            return page(
                "not_found.html", request, session, status=404, what="No such page for you."
            )
        start = int(after) if after else None
        records = await run_in_threadpool(
            lambda: registry.audit_trail(after_id=start, limit=AUDIT_PAGE)
        )
        return page(
            "registry_audit.html",
            request,
            session,
            records=records,
            after=start,
            next_after=records[-1].id if len(records) == AUDIT_PAGE else None,
        )

    # --- mass balance --------------------------------------------------------------------------

    @router.get("/mass-balance")
    async def mass_balance(
        request: Request,
        session: Auditor,
        start: Annotated[str | None, Query(alias="from", max_length=10)] = None,
        end: Annotated[str | None, Query(alias="to", max_length=10)] = None,
        group_by: Annotated[str | None, Query(max_length=16)] = None,
    ) -> HTMLResponse:
        window, problem = views.report_window(start, end, datetime.now(UTC))
        group = group_by if group_by in MASS_BALANCE_GROUPS else None
        document: Any = None
        if problem is None:
            params = {"from": window[0].isoformat(), "to": window[1].isoformat()}
            if group:
                params["group_by"] = group
            answer = await _api_get(request, session.token, reports.mass_balance, params)
            if answer.status_code == 200:
                document = answer.json()
            else:
                problem = f"the report answered {answer.status_code}: {answer.text[:300]}"
        return page(
            "mass_balance.html",
            request,
            session,
            problem=problem,
            start=window[0].date().isoformat(),
            end=(window[1] - timedelta(days=1)).date().isoformat(),
            group_by=group,
            group_choices=MASS_BALANCE_GROUPS,
            groups=views.mass_balance_groups(document) if document is not None else [],
            discrepancies=views.mass_balance_discrepancies(document),
        )

    return router
