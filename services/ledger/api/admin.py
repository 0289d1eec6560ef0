"""The admin API (``/v1/admin/``, admin tokens): what ``custody parties|devices|tokens|plants``
does, over HTTP. Tokens and secrets are in the answer that creates them and nowhere else (only
their hashes are stored); every change lands in the registry's audit trail as made by
``token:<admin token id>``. ``GET /v1/registry-audit`` shows that trail to unscoped auditors.
"""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, ConfigDict, Field

from services.ledger.api.dependencies import Auditor
from services.ledger.domain.integrity.hashing import format_instant
from services.registry.principals import ApiRole, ApiUser, PartyRole
from services.registry.store import (
    JURISDICTION,
    PEOPLE_TOKEN_LIFETIME,
    RegistryError,
    RegistryStore,
)
from services.web.auth import API_TOKEN, authenticate_request, require_api_user
from services.web.openapi import problem_responses
from services.web.parameters import MAX_BIGINT
from services.web.problems import Problem

PartyId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{1,63}$")]
Identifier = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")]
Jurisdiction = Annotated[str, Field(pattern=JURISDICTION.pattern)]
Label = Annotated[str, Field(max_length=200)]


async def current_admin(
    request: Request,
    _: Annotated[HTTPAuthorizationCredentials | None, Security(API_TOKEN)] = None,
) -> ApiUser:
    registry: RegistryStore = request.app.state.registry
    return require_api_user(await authenticate_request(request, registry), ApiRole.ADMIN)


Admin = Annotated[ApiUser, Depends(current_admin)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NewParty(_Body):
    party_id: PartyId
    role: PartyRole
    name: Annotated[str, Field(max_length=200)] = ""
    jurisdiction: Jurisdiction | None = None


class PartyChange(_Body):
    jurisdiction: Jurisdiction | None


class NewDevice(_Body):
    device_id: Identifier
    party_id: PartyId
    label: Label = ""


class Rotation(_Body):
    overlap_hours: Annotated[float, Field(ge=0, le=24 * 90)] = 24


class NewToken(_Body):
    token_id: Identifier
    role: ApiRole
    label: Label = ""
    party_id: PartyId | None = None
    scope_parties: Annotated[list[PartyId], Field(max_length=200)] = Field(default_factory=list)
    scope_jurisdictions: Annotated[list[Jurisdiction], Field(max_length=200)] = Field(
        default_factory=list
    )
    expires_in_days: Annotated[float | None, Field(gt=0, le=3650)] = PEOPLE_TOKEN_LIFETIME.days
    """Null: the token never expires."""


class PlantWebhook(_Body):
    url: Annotated[str, Field(max_length=2048)]
    new_secret: bool = False


class SecretRotation(_Body):
    grace_hours: Annotated[float, Field(ge=0, le=24 * 30)] = 24


def _refused(error: RegistryError) -> Problem:
    text = str(error)
    if text.startswith("unknown"):
        return Problem(404, "Not found", text)
    if "exists already" in text or "already" in text:
        return Problem(409, "Conflict", text)
    return Problem(422, "Registry change refused", text)


def _record_json(record: Any) -> dict[str, Any]:
    """A registry record (a dataclass or a row's dict) as JSON: times RFC 3339, tuples lists."""
    fields = (
        asdict(record) if is_dataclass(record) and not isinstance(record, type) else dict(record)
    )
    return {
        name: format_instant(value)
        if isinstance(value, datetime)
        else list(value)
        if isinstance(value, tuple)
        else value
        for name, value in fields.items()
    }


def admin_router(registry: RegistryStore) -> APIRouter:
    router = APIRouter(prefix="/v1/admin", tags=["admin"])

    async def change(call: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await run_in_threadpool(call, *args, **kwargs)
        except RegistryError as error:
            raise _refused(error) from error

    def actor(admin: ApiUser) -> str:
        return f"token:{admin.token_id}"

    # --- parties ---

    @router.get("/parties", summary="Every party, with its role and jurisdiction")
    async def parties(_: Admin) -> list[dict[str, Any]]:
        found = await run_in_threadpool(registry.parties)
        return [_record_json(party) for party in found]

    @router.post(
        "/parties",
        status_code=201,
        summary="Register a party",
        responses=problem_responses(400, 409),
    )
    async def add_party(admin: Admin, body: NewParty) -> dict[str, Any]:
        await change(
            registry.add_party,
            body.party_id,
            body.name or body.party_id,
            body.role,
            jurisdiction=body.jurisdiction,
            actor=actor(admin),
        )
        return body.model_dump(mode="json")

    @router.patch(
        "/parties/{party_id}",
        summary="Set or clear a party's jurisdiction",
        responses=problem_responses(400, 404),
    )
    async def change_party(admin: Admin, party_id: str, body: PartyChange) -> dict[str, Any]:
        await change(registry.set_jurisdiction, party_id, body.jurisdiction, actor=actor(admin))
        return {"party_id": party_id, "jurisdiction": body.jurisdiction}

    # --- devices ---

    @router.get("/devices", summary="Every device, with its last use")
    async def devices(_: Admin) -> list[dict[str, Any]]:
        found = await run_in_threadpool(registry.devices)
        return [_record_json(device) for device in found]

    @router.post(
        "/devices",
        status_code=201,
        summary="Register a device; its token is in this answer only",
        responses=problem_responses(400, 404, 409),
    )
    async def add_device(admin: Admin, body: NewDevice) -> dict[str, Any]:
        token = await change(
            registry.add_device, body.device_id, body.party_id, body.label, actor=actor(admin)
        )
        return {**body.model_dump(), "token": token}

    @router.post(
        "/devices/{device_id}/revoke",
        summary="Revoke a device (what it posted stays recorded and valid)",
        responses=problem_responses(400, 404, 409),
    )
    async def revoke_device(admin: Admin, device_id: str) -> dict[str, str]:
        await change(registry.revoke_device, device_id, actor=actor(admin))
        return {"device_id": device_id, "status": "revoked"}

    @router.post(
        "/devices/{device_id}/rotate",
        summary="A new device token (in this answer only); the old one works for the overlap",
        responses=problem_responses(400, 404, 422),
    )
    async def rotate_device(admin: Admin, device_id: str, body: Rotation) -> dict[str, Any]:
        token = await change(
            registry.rotate_device_token,
            device_id,
            timedelta(hours=body.overlap_hours),
            actor=actor(admin),
        )
        return {"device_id": device_id, "token": token, "overlap_hours": body.overlap_hours}

    # --- tokens ---

    @router.get("/tokens", summary="Every API token: role, scope, expiry, last use")
    async def tokens(_: Admin) -> list[dict[str, Any]]:
        found = await run_in_threadpool(registry.tokens)
        return [_record_json(token) for token in found]

    @router.post(
        "/tokens",
        status_code=201,
        summary="Create an API token; the token is in this answer only",
        responses=problem_responses(400, 404, 409, 422),
    )
    async def add_token(admin: Admin, body: NewToken) -> dict[str, Any]:
        lifetime = (
            timedelta(days=body.expires_in_days) if body.expires_in_days is not None else None
        )
        token = await change(
            registry.add_api_token,
            body.token_id,
            body.role,
            body.label,
            party_id=body.party_id,
            scope_parties=tuple(body.scope_parties),
            scope_jurisdictions=tuple(body.scope_jurisdictions),
            expires_in=lifetime,
            actor=actor(admin),
        )
        return {**body.model_dump(mode="json"), "token": token}

    @router.post(
        "/tokens/{token_id}/revoke",
        summary="Revoke an API token",
        responses=problem_responses(400, 404, 409),
    )
    async def revoke_token(admin: Admin, token_id: str) -> dict[str, str]:
        await change(registry.revoke_token, token_id, actor=actor(admin))
        return {"token_id": token_id, "status": "revoked"}

    # --- plants ---

    @router.put(
        "/plants/{party_id}/webhook",
        summary="Set a plant's notification endpoint; a new signing secret is in this answer only",
        responses=problem_responses(400, 404, 422),
    )
    async def set_webhook(admin: Admin, party_id: str, body: PlantWebhook) -> dict[str, Any]:
        result = await change(
            registry.set_plant_endpoint,
            party_id,
            body.url,
            rotate_secret=body.new_secret,
            actor=actor(admin),
        )
        return {"party_id": party_id, "url": result.url, "secret": result.new_secret}

    @router.post(
        "/plants/{party_id}/rotate-secret",
        summary="A new webhook secret (in this answer only); the old one lasts the grace",
        responses=problem_responses(400, 404, 422),
    )
    async def rotate_secret(admin: Admin, party_id: str, body: SecretRotation) -> dict[str, Any]:
        secret = await change(
            registry.rotate_plant_secret,
            party_id,
            timedelta(hours=body.grace_hours),
            actor=actor(admin),
        )
        return {"party_id": party_id, "secret": secret, "grace_hours": body.grace_hours}

    return router


def registry_audit_router(registry: RegistryStore) -> APIRouter:
    router = APIRouter(tags=["admin"])

    @router.get("/v1/registry-audit", summary="The registry's audit trail (unscoped auditors)")
    async def registry_audit(
        _: Auditor,
        after: Annotated[int | None, Query(ge=0, le=MAX_BIGINT)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        found = await run_in_threadpool(lambda: registry.audit_trail(after_id=after, limit=limit))
        items = [_record_json(record) for record in found]
        return {"items": items, "next_after": items[-1]["id"] if len(items) == limit else None}

    return router
