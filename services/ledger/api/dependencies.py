"""What every ledger API router shares: the auditor dependency and download headers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials

from services.registry.principals import ApiUser
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


def attachment(filename: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{filename}"'}
