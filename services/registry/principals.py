"""Who a bearer token speaks for, and how tokens are made and stored (hash only)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from enum import StrEnum


class PartyRole(StrEnum):
    SITE = "site"
    HAULER = "hauler"
    HUB = "hub"
    PLANT = "plant"


class ApiRole(StrEnum):
    AUDITOR = "auditor"
    ADMIN = "admin"
    PARTY = "party"
    """A party's own user: reads only the custody of containers that party took part in."""


@dataclass(frozen=True, slots=True)
class Device:
    device_id: str
    party_id: str
    party_role: PartyRole


@dataclass(frozen=True, slots=True)
class ApiUser:
    token_id: str
    role: ApiRole
    party_id: str | None = None
    """The party a ``party`` token belongs to."""
    scope: frozenset[str] | None = None
    """The parties whose containers this user may read; None: every container. A party user's
    scope is its own party; a scoped auditor's, its parties and those of its jurisdictions
    (resolved when the token is looked up, so within the token-cache window)."""

    @property
    def scoped(self) -> bool:
        return self.scope is not None


Principal = Device | ApiUser

DEVICE_TOKEN_PREFIX = "bcd_"
API_TOKEN_PREFIX = "bca_"


def new_token(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
