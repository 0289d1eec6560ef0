"""What FastAPI's generated OpenAPI description cannot say from the route signatures alone.

- Every error is ``application/problem+json`` (``ProblemDetails``): FastAPI's own 422
  (``HTTPValidationError``, ``application/json``) is replaced by it, and operations that take a
  bearer token also answer 401 and 403.
- Bodies that handlers read by hand (size limits first, then validation) are described with
  ``json_body``; their schemas join the description's components via ``install_openapi``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, TypeAdapter

from services.web.problems import PROBLEM_JSON, ProblemDetails

REF_TEMPLATE = "#/components/schemas/{model}"
_FASTAPI_VALIDATION = ("HTTPValidationError", "ValidationError")
_REASONS = {
    400: "Malformed request (not JSON, bad header or cursor)",
    401: "No, malformed, unknown, expired or revoked credentials",
    403: "The credentials are not allowed to do this",
    404: "Nothing recorded under that name",
    413: "The body or batch is larger than the limit",
    422: "Invalid input; `errors` gives each field's path",
    429: "Rate limit exceeded; nothing was accepted; see `Retry-After`",
    500: "The ledger failed its own integrity check",
    503: "A backing service is unavailable; nothing was accepted; see `Retry-After`",
}


def schema_ref(name: str) -> dict[str, str]:
    return {"$ref": REF_TEMPLATE.format(model=name)}


def component_schemas(
    name: str, source: type[BaseModel] | TypeAdapter[Any]
) -> dict[str, dict[str, Any]]:
    """``name`` and every model it uses, as OpenAPI component schemas."""
    if isinstance(source, TypeAdapter):
        schema = source.json_schema(ref_template=REF_TEMPLATE)
    else:
        schema = source.model_json_schema(ref_template=REF_TEMPLATE)
    definitions: dict[str, dict[str, Any]] = schema.pop("$defs", {})
    return {**definitions, name: schema}


def json_body(name: str, description: str) -> dict[str, Any]:
    """``openapi_extra`` for a JSON request body the handler reads itself."""
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {"application/json": {"schema": schema_ref(name)}},
        }
    }


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses`` entries for the problems an operation may answer."""
    return {status: _problem_response(status) for status in statuses}


def _problem_response(status: int) -> dict[str, Any]:
    description = _REASONS.get(status) or HTTPStatus(status).phrase
    response: dict[str, Any] = {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": schema_ref("ProblemDetails")}},
    }
    if status in (429, 503):
        response["headers"] = {
            "Retry-After": {
                "description": "Seconds to wait before trying again.",
                "schema": {"type": "integer", "minimum": 1},
            }
        }
    return response


def _is_fastapi_validation(response: Mapping[str, Any]) -> bool:
    for media in response.get("content", {}).values():
        if media.get("schema", {}).get("$ref", "").endswith("/HTTPValidationError"):
            return True
    return False


def describe_problems(document: dict[str, Any], extra: Mapping[str, dict[str, Any]]) -> None:
    """Rewrite a generated OpenAPI ``document`` in place (see the module docstring)."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(component_schemas("ProblemDetails", ProblemDetails))
    schemas.update(extra)
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for status, response in list(responses.items()):
                if _is_fastapi_validation(response):
                    responses[status] = _problem_response(int(status))
            if operation.get("security"):
                for status in (401, 403):
                    responses.setdefault(str(status), _problem_response(status))
    for name in _FASTAPI_VALIDATION:
        schemas.pop(name, None)


def install_openapi(app: FastAPI, extra: Mapping[str, dict[str, Any]] | None = None) -> None:
    """Make ``app.openapi()`` return the rewritten description (built once, then cached)."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            describe_problems(document, extra or {})
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
