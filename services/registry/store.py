"""The registry in PostgreSQL, with a short-lived cache for token look-ups on the hot path."""

from __future__ import annotations

import base64
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import ColumnElement, Connection, Engine, and_, func, or_, select, text, update
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


OPERATOR = "operator"
"""The actor of changes made without naming one (the CLI names ``cli:<user>``)."""
PEOPLE_TOKEN_LIFETIME = timedelta(days=90)
"""How long an auditor, admin or party token is valid unless told otherwise."""
JURISDICTION = re.compile(r"[A-Z]{2}-[A-Z0-9]{1,3}")


@dataclass(frozen=True, slots=True)
class TokenInfo:
    token_id: str
    role: str
    label: str
    party_id: str | None
    scope_parties: tuple[str, ...]
    scope_jurisdictions: tuple[str, ...]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    device_id: str
    party_id: str
    label: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None
    previous_token_valid_until: datetime | None


@dataclass(frozen=True, slots=True)
class AuditRecord:
    id: int
    at: datetime
    actor: str
    action: str
    subject: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


def _audit(
    connection: Connection,
    actor: str,
    action: str,
    subject: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    """One row of the registry's audit trail, in the transaction of the change it records."""
    connection.execute(
        tables.audit.insert().values(
            actor=actor, action=action, subject=subject, before=before, after=after
        )
    )


def _moment(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


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

    def add_party(
        self,
        party_id: str,
        name: str,
        role: PartyRole,
        *,
        jurisdiction: str | None = None,
        actor: str = OPERATOR,
    ) -> None:
        if jurisdiction is not None and not JURISDICTION.fullmatch(jurisdiction):
            raise RegistryError(f"jurisdiction {jurisdiction!r} is not ISO 3166-2 (e.g. US-CA)")
        after = {"name": name, "role": role.value, "jurisdiction": jurisdiction}
        try:
            with self._engine.begin() as connection:
                connection.execute(
                    tables.parties.insert().values(
                        party_id=party_id, name=name, role=role.value, jurisdiction=jurisdiction
                    )
                )
                _audit(connection, actor, "party.add", f"party:{party_id}", None, after)
        except IntegrityError as error:
            raise RegistryError(f"party {party_id!r} exists already or is not valid") from error
        self._roles = None

    def set_jurisdiction(self, party_id: str, jurisdiction: str | None, *, actor: str) -> None:
        if jurisdiction is not None and not JURISDICTION.fullmatch(jurisdiction):
            raise RegistryError(f"jurisdiction {jurisdiction!r} is not ISO 3166-2 (e.g. US-CA)")
        p = tables.parties.c
        with self._engine.begin() as connection:
            before = connection.execute(
                select(p.jurisdiction).where(p.party_id == party_id)
            ).one_or_none()
            if before is None:
                raise RegistryError(f"unknown party {party_id!r}")
            connection.execute(
                update(tables.parties)
                .where(p.party_id == party_id)
                .values(jurisdiction=jurisdiction)
            )
            _audit(
                connection,
                actor,
                "party.jurisdiction",
                f"party:{party_id}",
                {"jurisdiction": before.jurisdiction},
                {"jurisdiction": jurisdiction},
            )

    def parties(self) -> list[dict[str, Any]]:
        p = tables.parties.c
        with self._engine.connect() as connection:
            rows = connection.execute(
                select(p.party_id, p.name, p.role, p.jurisdiction, p.created_at).order_by(
                    p.party_id
                )
            ).mappings()
            return [dict(row) for row in rows]

    def add_device(
        self, device_id: str, party_id: str, label: str = "", *, actor: str = OPERATOR
    ) -> str:
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
                _audit(
                    connection,
                    actor,
                    "device.add",
                    f"device:{device_id}",
                    None,
                    {"party_id": party_id, "label": label},
                )
        except IntegrityError as error:
            raise RegistryError(f"device {device_id!r} exists already") from error
        return token

    def add_api_token(
        self,
        token_id: str,
        role: ApiRole,
        label: str = "",
        *,
        party_id: str | None = None,
        scope_parties: tuple[str, ...] = (),
        scope_jurisdictions: tuple[str, ...] = (),
        expires_in: timedelta | None = PEOPLE_TOKEN_LIFETIME,
        actor: str = OPERATOR,
    ) -> str:
        """An API token (auditor, admin or party); returns it, stored only as a hash.

        ``expires_in=None`` makes a token that never expires."""
        if (role is ApiRole.PARTY) != (party_id is not None):
            raise RegistryError("a party token names its party (--party), and only it does")
        if (scope_parties or scope_jurisdictions) and role is not ApiRole.AUDITOR:
            raise RegistryError("only auditor tokens are scoped to parties or jurisdictions")
        for jurisdiction in scope_jurisdictions:
            if not JURISDICTION.fullmatch(jurisdiction):
                raise RegistryError(f"jurisdiction {jurisdiction!r} is not ISO 3166-2 (e.g. US-CA)")
        known = self.party_roles(fresh=True)
        for party in (*scope_parties, *([party_id] if party_id else [])):
            if party not in known:
                raise RegistryError(f"unknown party {party!r}: add it with `custody parties add`")
        if expires_in is not None and expires_in <= timedelta(0):
            raise RegistryError("a token's lifetime must be positive")
        token = new_token(API_TOKEN_PREFIX)
        expires_at = datetime.now(UTC) + expires_in if expires_in is not None else None
        values = {
            "role": role.value,
            "label": label,
            "party_id": party_id,
            "scope_parties": sorted(scope_parties),
            "scope_jurisdictions": sorted(scope_jurisdictions),
            "expires_at": expires_at,
        }
        try:
            with self._engine.begin() as connection:
                connection.execute(
                    tables.api_tokens.insert().values(
                        token_id=token_id, token_hash=token_digest(token), **values
                    )
                )
                _audit(
                    connection,
                    actor,
                    "token.add",
                    f"token:{token_id}",
                    None,
                    {**values, "expires_at": _moment(expires_at)},
                )
        except IntegrityError as error:
            raise RegistryError(f"token id {token_id!r} exists already") from error
        return token

    def tokens(self) -> list[TokenInfo]:
        t = tables.api_tokens.c
        query = select(
            t.token_id,
            t.role,
            t.label,
            t.party_id,
            t.scope_parties,
            t.scope_jurisdictions,
            t.created_at,
            t.expires_at,
            t.revoked_at,
            t.last_used_at,
        ).order_by(t.token_id)
        with self._engine.connect() as connection:
            return [
                TokenInfo(
                    **{
                        **row,
                        "scope_parties": tuple(row["scope_parties"]),
                        "scope_jurisdictions": tuple(row["scope_jurisdictions"]),
                    }
                )
                for row in connection.execute(query).mappings()
            ]

    def devices(self) -> list[DeviceInfo]:
        d = tables.devices.c
        query = select(
            d.device_id,
            d.party_id,
            d.label,
            d.created_at,
            d.revoked_at,
            d.last_used_at,
            d.previous_expires_at.label("previous_token_valid_until"),
        ).order_by(d.device_id)
        with self._engine.connect() as connection:
            return [DeviceInfo(**row) for row in connection.execute(query).mappings()]

    def revoke_token(self, token_id: str, *, actor: str = OPERATOR) -> None:
        self._revoke(tables.api_tokens, tables.api_tokens.c.token_id, token_id, "token", actor)

    def revoke_device(self, device_id: str, *, actor: str = OPERATOR) -> None:
        """The device can post no more; what it posted stays recorded and valid."""
        self._revoke(tables.devices, tables.devices.c.device_id, device_id, "device", actor)

    def _revoke(self, table: Any, key: Any, value: str, kind: str, actor: str) -> None:
        with self._engine.begin() as connection:
            revoked = connection.execute(
                update(table)
                .where(key == value, table.c.revoked_at.is_(None))
                .values(revoked_at=func.now())
                .returning(table.c.revoked_at)
            ).scalar_one_or_none()
            if revoked is None:
                exists = connection.execute(select(key).where(key == value)).first()
                if exists is None:
                    raise RegistryError(f"unknown {kind} {value!r}")
                raise RegistryError(f"{kind} {value!r} is revoked already")
            _audit(
                connection,
                actor,
                f"{kind}.revoke",
                f"{kind}:{value}",
                {"revoked_at": None},
                {"revoked_at": _moment(revoked)},
            )
        with self._lock:
            self._principals.clear()

    def rotate_device_token(
        self, device_id: str, overlap: timedelta, *, actor: str = OPERATOR
    ) -> str:
        """A new token for a device; the current one keeps working for ``overlap``."""
        if overlap < timedelta(0):
            raise RegistryError("the overlap cannot be negative")
        token = new_token(DEVICE_TOKEN_PREFIX)
        d = tables.devices.c
        with self._engine.begin() as connection:
            row = connection.execute(
                select(d.token_hash, d.revoked_at).where(d.device_id == device_id)
            ).one_or_none()
            if row is None:
                raise RegistryError(f"unknown device {device_id!r}")
            if row.revoked_at is not None:
                raise RegistryError(f"device {device_id!r} is revoked")
            until = datetime.now(UTC) + overlap
            connection.execute(
                update(tables.devices)
                .where(d.device_id == device_id)
                .values(
                    token_hash=token_digest(token),
                    previous_token_hash=row.token_hash,
                    previous_expires_at=until,
                )
            )
            _audit(
                connection,
                actor,
                "device.rotate",
                f"device:{device_id}",
                None,
                {"previous_token_valid_until": _moment(until)},
            )
        return token

    def audit_trail(self, *, after_id: int | None, limit: int) -> list[AuditRecord]:
        a = tables.audit.c
        query = select(tables.audit).order_by(a.id).limit(limit)
        if after_id is not None:
            query = query.where(a.id > after_id)
        with self._engine.connect() as connection:
            return [AuditRecord(**row) for row in connection.execute(query).mappings()]

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
        """The principal of a token digest that is neither revoked nor expired.

        Tokens are found by the SHA-256 of the token through a unique index: what the
        look-up's timing could reveal is where a digest sorts, which says nothing about any
        token. Each look-up (at most one per token per cache window) records the token's use.
        """
        devices, parties, api = tables.devices, tables.parties, tables.api_tokens
        d = devices.c
        with self._engine.begin() as connection:
            device = connection.execute(
                select(d.device_id, d.party_id, parties.c.role)
                .join(parties, parties.c.party_id == d.party_id)
                .where(
                    d.revoked_at.is_(None),
                    or_(
                        d.token_hash == digest,
                        and_(d.previous_token_hash == digest, d.previous_expires_at > func.now()),
                    ),
                )
            ).first()
            if device is not None:
                connection.execute(
                    update(devices)
                    .where(d.device_id == device.device_id)
                    .values(last_used_at=func.now())
                )
                return Device(device.device_id, device.party_id, PartyRole(device.role))
            user = connection.execute(
                select(api).where(
                    api.c.token_hash == digest,
                    _usable(api),
                )
            ).first()
            if user is None:
                return None
            connection.execute(
                update(api).where(api.c.token_id == user.token_id).values(last_used_at=func.now())
            )
            return _api_user(connection, user)

    def api_user(self, token_id: str) -> ApiUser | None:
        """The user of a token by its id, as a look-up of the token would give it now (None:
        unknown, revoked or expired); for work done later on a user's behalf."""
        api = tables.api_tokens
        with self._engine.connect() as connection:
            user = connection.execute(
                select(api).where(
                    api.c.token_id == token_id,
                    _usable(api),
                )
            ).first()
            return _api_user(connection, user) if user is not None else None

    def rotate_plant_secret(self, party_id: str, grace: timedelta, *, actor: str = OPERATOR) -> str:
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
            _audit(
                connection,
                actor,
                "plant.rotate-secret",
                f"party:{party_id}",
                None,
                {"previous_secrets_valid_for_s": grace.total_seconds()},
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
        self, party_id: str, url: str, *, rotate_secret: bool = False, actor: str = OPERATOR
    ) -> EndpointSet:
        """Create or update a plant's endpoint and (re-)enable it.

        The first call issues the outbound signing secret; later calls keep it unless
        ``rotate_secret`` (the receiver must then switch at once: there is no grace period).
        """
        url = endpoint_url(url)
        secret = new_webhook_secret()
        e = tables.plant_endpoints.c
        with self._engine.begin() as connection:
            _require_plant(connection, party_id, "only plants receive notifications")
            before = connection.execute(
                select(e.url, e.enabled).where(e.party_id == party_id)
            ).one_or_none()
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
            _audit(
                connection,
                actor,
                "plant.set-webhook",
                f"party:{party_id}",
                {"url": before.url, "enabled": before.enabled} if before is not None else None,
                {"url": url, "enabled": True, "new_secret": stored == secret},
            )
        return EndpointSet(party_id, url, secret if stored == secret else None)


def _usable(api: Any) -> ColumnElement[bool]:
    """An API token neither revoked nor expired."""
    return and_(
        api.c.revoked_at.is_(None), or_(api.c.expires_at.is_(None), api.c.expires_at > func.now())
    )


def _api_user(connection: Connection, user: Any) -> ApiUser:
    """An api_tokens row as its user, the scope resolved (a jurisdiction's parties now)."""
    scope: frozenset[str] | None = None
    if user.role == ApiRole.PARTY.value:
        scope = frozenset({user.party_id})
    elif user.scope_parties or user.scope_jurisdictions:
        parties = tables.parties.c
        in_jurisdictions = connection.execute(
            select(parties.party_id).where(parties.jurisdiction.in_(list(user.scope_jurisdictions)))
        ).scalars()
        scope = frozenset(user.scope_parties) | frozenset(in_jurisdictions)
    return ApiUser(user.token_id, ApiRole(user.role), user.party_id, scope)


def _require_plant(connection: Connection, party_id: str, why: str) -> None:
    """RegistryError unless ``party_id`` is a registered plant; ``why`` ends the message."""
    role = connection.execute(
        select(tables.parties.c.role).where(tables.parties.c.party_id == party_id)
    ).scalar_one_or_none()
    if role is None:
        raise RegistryError(f"unknown party {party_id!r}: add it with `custody parties add`")
    if role != PartyRole.PLANT.value:
        raise RegistryError(f"{party_id} is a {role}; {why}")
