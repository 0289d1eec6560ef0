"""RFC 9457 problem+json: one exception type, mapped to HTTP in one place."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.contract.field_errors import field_errors, summary

PROBLEM_JSON = "application/problem+json"


class FieldError(BaseModel):
    path: str
    message: str


class ProblemDetails(BaseModel):
    """The body of every error answer (RFC 9457), as ``Problem.body`` writes it."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[FieldError] | None = None


class Problem(Exception):
    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        errors: Sequence[dict[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
        kind: str = "about:blank",
    ) -> None:
        super().__init__(detail)
        self.kind = kind
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = list(errors) if errors else None
        self.headers = dict(headers) if headers else None

    def body(self, instance: str | None = None) -> dict[str, Any]:
        problem: dict[str, Any] = {
            "type": self.kind,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            problem["instance"] = instance
        if self.errors is not None:
            problem["errors"] = self.errors
        return problem


def invalid(errors: list[dict[str, Any]]) -> Problem:
    return Problem(422, "Invalid event", summary(errors), errors=errors)


def problem_response(problem: Problem, instance: str | None = None) -> JSONResponse:
    return JSONResponse(
        problem.body(instance),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=problem.headers,
    )


def install_problem_handlers(app: FastAPI) -> None:
    async def on_problem(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, Problem)
        return problem_response(error, request.url.path)

    async def on_validation(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        errors = field_errors(error.errors())
        return problem_response(invalid(errors), request.url.path)

    async def on_http(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, StarletteHTTPException)
        title = {404: "Not found", 405: "Method not allowed"}.get(error.status_code, "Error")
        return problem_response(
            Problem(error.status_code, title, str(error.detail), headers=error.headers),
            request.url.path,
        )

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
