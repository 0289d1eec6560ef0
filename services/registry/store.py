"""The registry in PostgreSQL, with a short-lived cache for token look-ups on the hot path."""

from __future__ import annotations

import base64
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import Connection, Engine, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError

from services.registry import tables
from services.registry.principals import (
    API_TOKEN_PREFIX,
    DEVICE_TOKEN_PREFIX,
    ApiRole,
    ApiUser,
    Device,
    PartyRole,
    Principal,
    new_token,
    token_digest,
)


class RegistryError(ValueError):
    """A registry change that cannot be made; the message says why."""


WEBHOOK_SECRET_PREFIX = "whsec_"


def new_webhook_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` + base64 of 32 random bytes."""
    return WEBHOOK_SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


@dataclass(frozen=True, slots=True)
class EndpointSet:
    party_id: str
    url: str
    new_secret: str | None  # set when a secret was issued now (shown to the operator once)


def endpoint_url(url: str) -> str:
    """An absolute http(s) URL with a host, else RegistryError."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as error:
        raise RegistryError(f"not a URL: {error}") from error
    if parsed.scheme not in {"http", "https"} or not parsed.host:
        raise RegistryError(f"{url!r} is not an absolute http(s) URL")
    return str(parsed)


class RegistryStore:
    def __init__(self, engine: Engine, *, cache_seconds: float = 5.0) -> None:
        self._engine = engine
        self._cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._principals: dict[bytes, tuple[float, Principal | None]] = {}
        self._roles: tuple[float, dict[str, PartyRole]] | None = None

    def add_party(self, party_id: str, name: str, role: PartyRole) -> None:
        try:
            with self._engine.begin() as connection:
                connection.execute(
                    tables.parties.insert().values(party_id=party_id, name=name, role=role.value)
                )
        except IntegrityError as error:
            raise RegistryError(f"party {party_id!r} exists already or is not valid") from error
        self._roles = None

    def add_device(self, device_id: str, party_id: str, label: str = "") -> str:
        """Register a device; returns its token, which is stored only as a hash."""
        if party_id not in self.party_roles(fresh=True):
            raise RegistryError(f"unknown party {party_id!r}: add it with `custody parties add`")
        token = new_token(DEVICE_TOKEN_PREFIX)
        try:
            with self._engine.begin() as connection:
                connection.execute(
                    tables.devices.insert().values(
                        device_id=device_id,
                        party_id=party_id,
                        label=label,
                        token_hash=token_digest(token),
                    )
                )
        except IntegrityError as error:
            raise RegistryError(f"device {device_id!r} exists already") from error
        return token

    def add_api_token(self, token_id: str, role: ApiRole, label: str = "") -> str:
        token = new_token(API_TOKEN_PREFIX)
        try:
            with self._engine.begin() as connection:
                connection.execute(
                    tables.api_tokens.insert().values(
                        token_id=token_id,
                        role=role.value,
                        label=label,
                        token_hash=token_digest(token),
                    )
                )
        except IntegrityError as error:
            raise RegistryError(f"token id {token_id!r} exists already") from error
        return token

    def party_roles(self, *, fresh: bool = False) -> dict[str, PartyRole]:
        now = time.monotonic()
        cached = self._roles
        if not fresh and cached is not None and now - cached[0] < self._cache_seconds:
            return cached[1]
        with self._engine.connect() as connection:
            roles = {
                party_id: PartyRole(role)
                for party_id, role in connection.execute(
                    select(tables.parties.c.party_id, tables.parties.c.role)
                )
            }
        self._roles = (now, roles)
        return roles

    def cached_principal(self, token: str) -> tuple[bool, Principal | None]:
        """(True, principal) when a fresh cached answer exists; never touches the database."""
        with self._lock:
            cached = self._principals.get(token_digest(token))
        if cached is not None and time.monotonic() - cached[0] < self._cache_seconds:
            return True, cached[1]
        return False, None

    def principal(self, token: str) -> Principal | None:
        known, cached = self.cached_principal(token)
        if known:
            return cached
        digest = token_digest(token)
        now = time.monotonic()
        found = self._lookup(digest)
        with self._lock:
            if len(self._principals) > 100_000:
                self._principals.clear()
            self._principals[digest] = (now, found)
        return found

    def _lookup(self, digest: bytes) -> Principal | None:
        devices, parties, api = tables.devices, tables.parties, tables.api_tokens
        with self._engine.connect() as connection:
            device = connection.execute(
                select(devices.c.device_id, devices.c.party_id, parties.c.role)
                .join(parties, parties.c.party_id == devices.c.party_id)
                .where(devices.c.token_hash == digest, devices.c.revoked_at.is_(None))
            ).first()
            if device is not None:
                return Device(device.device_id, device.party_id, PartyRole(device.role))
            user = connection.execute(
                select(api.c.token_id, api.c.role).where(
                    api.c.token_hash == digest, api.c.revoked_at.is_(None)
                )
            ).first()
            if user is not None:
                return ApiUser(user.token_id, ApiRole(user.role))
        return None

    def rotate_plant_secret(self, party_id: str, grace: timedelta) -> str:
        """Issue a new webhook secret for a plant; returns it (shown to the operator once).

        Every secret still valid keeps verifying for ``grace`` more at most (one that expires
        sooner keeps its earlier expiry), so the plant can switch without losing a receipt.
        """
        if grace < timedelta(0):
            raise RegistryError("the grace period cannot be negative")
        secret = new_webhook_secret()
        with self._engine.begin() as connection:
            # Serialise rotations of one plant (custody_app may not lock registry rows).
            connection.execute(
                text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
                {"key": f"registry.plant_secrets:{party_id}"},
            )
            _require_plant(connection, party_id, "only plants have webhook secrets")
            connection.execute(
                text(
                    "UPDATE registry.plant_secrets SET expires_at = now() + :grace "
                    "WHERE party_id = :party_id "
                    "AND (expires_at IS NULL OR expires_at > now() + :grace)"
                ),
                {"party_id": party_id, "grace": grace},
            )
            connection.execute(
                text(
                    "INSERT INTO registry.plant_secrets (party_id, secret) "
                    "VALUES (:party_id, :secret)"
                ),
                {"party_id": party_id, "secret": secret},
            )
        return secret

    def plant_secrets(self, party_id: str) -> list[str]:
        """The webhook secrets of a plant that verify now, newest first; [] for non-plants.

        Read on every webhook, not cached: a rotation or an expiry takes effect at once, and
        plants post one receipt per container, far fewer requests than scanners.
        """
        with self._engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT s.secret FROM registry.plant_secrets s "
                    "JOIN registry.parties p ON p.party_id = s.party_id "
                    "WHERE s.party_id = :party_id AND p.role = 'plant' "
                    "AND (s.expires_at IS NULL OR s.expires_at > now()) "
                    "ORDER BY s.created_at DESC, s.secret_id DESC"
                ),
                {"party_id": party_id},
            ).scalars()
            return [str(secret) for secret in rows]

    def set_plant_endpoint(
        self, party_id: str, url: str, *, rotate_secret: bool = False
    ) -> EndpointSet:
        """Create or update a plant's endpoint and (re-)enable it.

        The first call issues the outbound signing secret; later calls keep it unless
        ``rotate_secret`` (the receiver must then switch at once: there is no grace period).
        """
        url = endpoint_url(url)
        secret = new_webhook_secret()
        with self._engine.begin() as connection:
            _require_plant(connection, party_id, "only plants receive notifications")
            statement = insert(tables.plant_endpoints).values(
                party_id=party_id, url=url, secret=secret
            )
            changes: dict[str, Any] = {
                "url": statement.excluded.url,
                "enabled": True,
                "disabled_reason": None,
                "updated_at": func.now(),
            }
            if rotate_secret:
                changes["secret"] = statement.excluded.secret
            stored = connection.execute(
                statement.on_conflict_do_update(
                    index_elements=[tables.plant_endpoints.c.party_id], set_=changes
                ).returning(tables.plant_endpoints.c.secret)
            ).scalar_one()
        return EndpointSet(party_id, url, secret if stored == secret else None)


def _require_plant(connection: Connection, party_id: str, why: str) -> None:
    """RegistryError unless ``party_id`` is a registered plant; ``why`` ends the message."""
    role = connection.execute(
        select(tables.parties.c.role).where(tables.parties.c.party_id == party_id)
    ).scalar_one_or_none()
    if role is None:
        raise RegistryError(f"unknown party {party_id!r}: add it with `custody parties add`")
    if role != PartyRole.PLANT.value:
        raise RegistryError(f"{party_id} is a {role}; {why}")
