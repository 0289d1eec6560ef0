"""Bearer tokens: read from the Authorization header, resolved by the registry."""

from __future__ import annotations

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPBearer

from services.registry.principals import ApiRole, ApiUser, Principal
from services.registry.store import RegistryStore
from services.web.problems import Problem

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="custody"'}

# For the OpenAPI description only: the handlers' own dependencies check the token.
DEVICE_TOKEN = HTTPBearer(
    scheme_name="deviceToken",
    description="A device's token (`custody devices add`).",
    auto_error=False,
)
API_TOKEN = HTTPBearer(
    scheme_name="apiToken",
    description="An auditor, admin or party token (`custody tokens add`).",
    auto_error=False,
)


async def authenticate_request(request: Request, registry: RegistryStore) -> Principal:
    """Authenticate without a thread hop when the token's answer is cached."""
    token = bearer_token(request)
    known, principal = registry.cached_principal(token)
    if not known:
        principal = await run_in_threadpool(registry.principal, token)
    if principal is None:
        raise Problem(401, "Unauthorized", "unknown, expired or revoked token", headers=_CHALLENGE)
    return principal


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization")
    if not header:
        raise Problem(
            401, "Unauthorized", "missing Authorization: Bearer token", headers=_CHALLENGE
        )
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem(
            401, "Unauthorized", "Authorization must be 'Bearer <token>'", headers=_CHALLENGE
        )
    return token.strip()


def require_api_user(principal: Principal, *roles: ApiRole, scoped_ok: bool = False) -> ApiUser:
    """An API user of one of ``roles`` (default: auditor or admin). A scoped user (a party
    user, a scoped auditor) only where the route reads within its scope (``scoped_ok``)."""
    allowed = roles or (ApiRole.AUDITOR, ApiRole.ADMIN)
    if not isinstance(principal, ApiUser) or principal.role not in allowed:
        names = " or ".join(role.value for role in allowed)
        raise Problem(403, "Forbidden", f"this endpoint needs an {names} token")
    if principal.scoped and not scoped_ok:
        raise Problem(
            403, "Forbidden", "this endpoint is for unscoped tokens: it reads every party's data"
        )
    return principal
