"""What ingest refuses, as one family of domain errors (docs/architecture.md §5).

A refusal means nothing of the request was produced. ``status`` is the answer the external
contract gives each kind; ``services/ingest/api/errors.py`` turns them into problem+json, and
the service layer counts and logs them by it.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import ValidationError

from services.contract.field_errors import FieldError, field_errors, summary


class Refused(Exception):
    status: ClassVar[int]

    def __init__(self, title: str, detail: str) -> None:
        super().__init__(detail)
        self.title = title
        self.detail = detail

    @property
    def errors(self) -> list[FieldError] | None:
        return None


class Malformed(Refused):
    """The request cannot be read at all: not JSON, not UTF-8, a missing or malformed header."""

    status = 400

    @classmethod
    def not_json(cls, error: Exception) -> Malformed:
        return cls("Malformed JSON", f"the body is not valid JSON: {error}")


class Unauthenticated(Refused):
    """No valid credential; ``challenge`` is the scheme and realm to authenticate with."""

    status = 401

    def __init__(self, detail: str, *, challenge: str) -> None:
        super().__init__("Unauthorized", detail)
        self.challenge = challenge


class Forbidden(Refused):
    """Authenticated, but not allowed to post this."""

    status = 403

    def __init__(self, detail: str) -> None:
        super().__init__("Forbidden", detail)


class TooLarge(Refused):
    """The body or the batch is over its limit."""

    status = 413


class Invalid(Refused):
    """Readable but not valid: each field error names its path."""

    status = 422

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("Invalid event", summary(errors))
        self._errors = errors

    @property
    def errors(self) -> list[FieldError]:
        return self._errors

    @classmethod
    def at(cls, path: str, message: str) -> Invalid:
        return cls([{"path": path, "message": message}])

    @classmethod
    def from_validation(cls, error: ValidationError, prefix: str = "") -> Invalid:
        """Pydantic's errors, each path under ``prefix`` (``(root)`` for the document)."""
        return cls(field_errors(error.errors(), prefix))


class Throttled(Refused):
    """Over the device's rate limit; nothing of the request was taken."""

    status = 429

    def __init__(self, detail: str, *, retry_after_s: int) -> None:
        super().__init__("Too many requests", detail)
        self.retry_after_s = retry_after_s


class Unavailable(Refused):
    """A backing service (Kafka) did not answer; nothing was accepted."""

    status = 503

    def __init__(self, detail: str, *, retry_after_s: int) -> None:
        super().__init__("Service unavailable", detail)
        self.retry_after_s = retry_after_s
