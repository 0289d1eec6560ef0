"""Bearer tokens: read from the Authorization header, resolved by the registry."""

from __future__ import annotations

from fastapi import Request

from services.registry.principals import ApiRole, ApiUser, Principal
from services.registry.store import RegistryStore
from services.web.problems import Problem

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="custody"'}


def authenticate(request: Request, registry: RegistryStore) -> Principal:
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
    principal = registry.principal(token.strip())
    if principal is None:
        raise Problem(401, "Unauthorized", "unknown or revoked token", headers=_CHALLENGE)
    return principal


def require_api_user(principal: Principal, *roles: ApiRole) -> ApiUser:
    allowed = roles or (ApiRole.AUDITOR, ApiRole.ADMIN)
    if not isinstance(principal, ApiUser) or principal.role not in allowed:
        names = " or ".join(role.value for role in allowed)
        raise Problem(403, "Forbidden", f"this endpoint needs an {names} token")
    return principal
