"""Ingest's domain errors as RFC 9457 problem+json: the one place they become HTTP."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from services.ingest.domain.errors import Refused, Throttled, Unauthenticated, Unavailable
from services.web.problems import Problem, install_problem_handlers, problem_response


def problem_of(refused: Refused) -> Problem:
    headers: dict[str, str] | None = None
    if isinstance(refused, Throttled | Unavailable):
        headers = {"Retry-After": str(refused.retry_after_s)}
    elif isinstance(refused, Unauthenticated):
        headers = {"WWW-Authenticate": refused.challenge}
    return Problem(
        refused.status, refused.title, refused.detail, errors=refused.errors, headers=headers
    )


def install_error_handlers(app: FastAPI) -> None:
    """The shared handlers (``Problem``, request validation, 404/405) and ingest's refusals."""
    install_problem_handlers(app)

    async def on_refused(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, Refused)
        return problem_response(problem_of(error), request.url.path)

    app.add_exception_handler(Refused, on_refused)
