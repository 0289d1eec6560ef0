"""What every ledger API router shares: the auditor dependency and download headers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials

from services.registry.principals import ApiRole, ApiUser
from services.registry.store import RegistryStore
from services.web.auth import API_TOKEN, authenticate_request, require_api_user

CSV_MEDIA_TYPE = "text/csv"


async def current_auditor(
    request: Request,
    _: Annotated[HTTPAuthorizationCredentials | None, Security(API_TOKEN)] = None,
) -> ApiUser:
    """An auditor or admin token (the registry is set on app.state by create_app)."""
    registry: RegistryStore = request.app.state.registry
    return require_api_user(await authenticate_request(request, registry))


Auditor = Annotated[ApiUser, Depends(current_auditor)]


async def current_reader(
    request: Request,
    _: Annotated[HTTPAuthorizationCredentials | None, Security(API_TOKEN)] = None,
) -> ApiUser:
    """An auditor, admin or party token: routes that take it read within ``reader.scope``."""
    registry: RegistryStore = request.app.state.registry
    principal = await authenticate_request(request, registry)
    return require_api_user(
        principal, ApiRole.AUDITOR, ApiRole.ADMIN, ApiRole.PARTY, scoped_ok=True
    )


Reader = Annotated[ApiUser, Depends(current_reader)]
"""A reader: unscoped (every container) or scoped to the containers its parties took part in."""


def attachment(filename: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{filename}"'}
