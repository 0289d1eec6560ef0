"""What both EPCIS 2.0 interfaces (capture at ingest, queries at the ledger) answer with: the
version headers of the REST bindings and problems typed by the EPCIS exception."""

from __future__ import annotations

from services.web.problems import Problem

EPCIS_VERSION = "2.0.0"
CBV_VERSION = "2.0.0"
VERSION_HEADERS = {"GS1-EPCIS-Version": EPCIS_VERSION, "GS1-CBV-Version": CBV_VERSION}


def epcis_problem(status: int, exception: str, title: str, detail: str) -> Problem:
    """A problem whose ``type`` is ``epcisException:<exception>``, with the version headers."""
    return Problem(
        status, title, detail, kind=f"epcisException:{exception}", headers=VERSION_HEADERS
    )
