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


@dataclass(frozen=True, slots=True)
class Device:
    device_id: str
    party_id: str
    party_role: PartyRole


@dataclass(frozen=True, slots=True)
class ApiUser:
    token_id: str
    role: ApiRole


Principal = Device | ApiUser

DEVICE_TOKEN_PREFIX = "bcd_"
API_TOKEN_PREFIX = "bca_"


def new_token(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
