"""The tlog-witness ``add-checkpoint`` call (c2sp.org/tlog-witness) over HTTP."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

SIZE_MEDIA_TYPE = "text/x.tlog.size"


@dataclass(frozen=True, slots=True)
class Cosigned:
    lines: list[str]


@dataclass(frozen=True, slots=True)
class Conflict:
    """The witness has cosigned up to ``size``; ask again from there."""

    size: int


@dataclass(frozen=True, slots=True)
class Refused:
    status: int
    reason: str


WitnessAnswer = Cosigned | Conflict | Refused


def add_checkpoint_body(old_size: int, proof: Sequence[bytes], note: str) -> bytes:
    lines = [f"old {old_size}"] + [base64.b64encode(item).decode() for item in proof]
    return ("\n".join(lines) + "\n\n" + note).encode()


def add_checkpoint(
    client: httpx.Client, url: str, old_size: int, proof: Sequence[bytes], note: str
) -> WitnessAnswer:
    """One submission; network errors are the caller's (httpx.HTTPError)."""
    response = client.post(
        url.rstrip("/") + "/add-checkpoint", content=add_checkpoint_body(old_size, proof, note)
    )
    if response.status_code == 200:
        return Cosigned([line for line in response.text.split("\n") if line])
    if response.status_code == 409:
        text = response.text.strip()
        if response.headers.get("content-type", "").startswith(SIZE_MEDIA_TYPE) and text.isdigit():
            return Conflict(int(text))
    return Refused(response.status_code, response.text.strip()[:300])
