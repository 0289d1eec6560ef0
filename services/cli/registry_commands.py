"""``custody parties|devices|tokens|plants …`` and ``custody registry-audit``: the registry.

Every change is recorded in the registry's audit trail as made by ``cli:<user>``.
"""

from __future__ import annotations

import getpass
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Annotated

import typer
from rich.table import Table

from services.bootstrap import resources
from services.cli.output import console, errors, fail
from services.registry.principals import ApiRole, PartyRole
from services.registry.store import PEOPLE_TOKEN_LIFETIME, RegistryError, RegistryStore
from services.settings import get_settings

parties_app = typer.Typer(
    help="Parties of the network (sites, haulers, hubs, plants).", no_args_is_help=True
)
devices_app = typer.Typer(help="Scanner devices and their tokens.", no_args_is_help=True)
tokens_app = typer.Typer(
    help="API tokens: auditors (optionally scoped), admins and party users.", no_args_is_help=True
)
plants_app = typer.Typer(help="Plants' signed webhooks (Standard Webhooks).", no_args_is_help=True)

_DURATION = re.compile(r"(\d+)\s*([dhm])")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def parse_duration(text: str) -> timedelta:
    """``90d``, ``12h``, ``30m`` (or ``1d12h``) as a timedelta; typer.BadParameter otherwise."""
    compact = text.strip().lower()
    parts = _DURATION.findall(compact)
    if not parts or "".join(number + unit for number, unit in parts) != compact.replace(" ", ""):
        raise typer.BadParameter(f"{text!r}: give a duration such as 90d, 12h or 30m")
    total = timedelta()
    for number, unit in parts:
        total += timedelta(**{_UNITS[unit]: int(number)})
    if total <= timedelta(0):
        raise typer.BadParameter(f"{text!r}: a duration must be positive")
    return total


def actor() -> str:
    return f"cli:{getpass.getuser()}"


@contextmanager
def registry() -> Iterator[RegistryStore]:
    """The registry for one command; its engine is disposed when the command ends."""
    with resources() as opened:
        yield opened.registry()


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment is not None else "—"


# --- parties ---------------------------------------------------------------------------------


@parties_app.command("add")
def parties_add(
    party_id: Annotated[str, typer.Argument(help="Lower-case id, e.g. site-001.")],
    role: Annotated[PartyRole, typer.Option(help="site, hauler, hub or plant.")],
    name: Annotated[str, typer.Option(help="Display name.")] = "",
    jurisdiction: Annotated[
        str | None, typer.Option(help="ISO 3166-2 subdivision, e.g. US-CA.")
    ] = None,
) -> None:
    """Register a party."""
    try:
        with registry() as store:
            store.add_party(
                party_id, name or party_id, role, jurisdiction=jurisdiction, actor=actor()
            )
    except RegistryError as error:
        raise fail(str(error)) from error
    console.print(f"party {party_id} ({role}) added")


@parties_app.command("set-jurisdiction")
def parties_set_jurisdiction(
    party_id: str,
    jurisdiction: Annotated[str, typer.Argument(help="ISO 3166-2, e.g. US-CA; '-' for none.")],
) -> None:
    """Set or clear a party's jurisdiction (scoped auditors see parties by jurisdiction)."""
    try:
        with registry() as store:
            store.set_jurisdiction(
                party_id, None if jurisdiction == "-" else jurisdiction, actor=actor()
            )
    except RegistryError as error:
        raise fail(str(error)) from error
    console.print(f"party {party_id}: jurisdiction {jurisdiction}")


@parties_app.command("list")
def parties_list() -> None:
    """List registered parties."""
    table = Table("party", "role", "jurisdiction", "name")
    with registry() as store:
        found = store.parties()
    for party in found:
        table.add_row(party["party_id"], party["role"], party["jurisdiction"] or "—", party["name"])
    console.print(table)


# --- devices ---------------------------------------------------------------------------------


@devices_app.command("add")
def devices_add(
    device_id: str,
    party: Annotated[str, typer.Option(help="The party the device belongs to.")],
    label: str = "",
) -> None:
    """Register a scanner; prints its token once (only a hash is stored)."""
    try:
        with registry() as store:
            token = store.add_device(device_id, party, label, actor=actor())
    except RegistryError as error:
        raise fail(str(error)) from error
    errors.print(f"device {device_id} of {party} added; its token (shown once):")
    print(token)


@devices_app.command("list")
def devices_list() -> None:
    """List devices with their last use (to within the token-cache window)."""
    table = Table("device", "party", "created", "last used", "revoked", "old token until")
    with registry() as store:
        found = store.devices()
    for device in found:
        table.add_row(
            device.device_id,
            device.party_id,
            _when(device.created_at),
            _when(device.last_used_at),
            _when(device.revoked_at),
            _when(device.previous_token_valid_until),
        )
    console.print(table)


@devices_app.command("revoke")
def devices_revoke(device_id: str) -> None:
    """Revoke a device's token; what it posted stays recorded and valid."""
    try:
        with registry() as store:
            store.revoke_device(device_id, actor=actor())
    except RegistryError as error:
        raise fail(str(error)) from error
    cache = get_settings().registry_cache_s
    console.print(f"device {device_id} revoked (refused everywhere within {cache:g} s)")


@devices_app.command("rotate")
def devices_rotate(
    device_id: str,
    overlap: Annotated[
        str, typer.Option(help="How long the current token keeps working, e.g. 24h.")
    ] = "24h",
) -> None:
    """Issue a new token for a device; prints it once. The current one works for the overlap."""
    window = parse_duration(overlap)
    try:
        with registry() as store:
            token = store.rotate_device_token(device_id, window, actor=actor())
    except RegistryError as error:
        raise fail(str(error)) from error
    errors.print(f"new token of {device_id} (shown once); the previous one works for {overlap}:")
    print(token)


# --- API tokens ------------------------------------------------------------------------------


@tokens_app.command("add")
def tokens_add(
    token_id: str,
    role: Annotated[ApiRole, typer.Option(help="auditor, admin or party.")],
    label: str = "",
    party: Annotated[
        str | None, typer.Option(help="The party a party token belongs to (role party).")
    ] = None,
    scope_party: Annotated[
        list[str] | None, typer.Option(help="Scope an auditor to this party (repeatable).")
    ] = None,
    scope_jurisdiction: Annotated[
        list[str] | None,
        typer.Option(help="Scope an auditor to the parties of this jurisdiction (repeatable)."),
    ] = None,
    expires_in: Annotated[
        str, typer.Option(help="Lifetime, e.g. 90d or 12h; 'never' for none.")
    ] = f"{PEOPLE_TOKEN_LIFETIME.days}d",
) -> None:
    """Create an API token; prints it once (only a hash is stored)."""
    lifetime = None if expires_in.strip().lower() == "never" else parse_duration(expires_in)
    try:
        with registry() as store:
            token = store.add_api_token(
                token_id,
                role,
                label,
                party_id=party,
                scope_parties=tuple(scope_party or ()),
                scope_jurisdictions=tuple(scope_jurisdiction or ()),
                expires_in=lifetime,
                actor=actor(),
            )
    except RegistryError as error:
        raise fail(str(error)) from error
    until = f"expires in {expires_in}" if lifetime is not None else "never expires"
    errors.print(f"{role} token {token_id} created, {until} (shown once):")
    print(token)


@tokens_app.command("list")
def tokens_list() -> None:
    """List API tokens: role, scope, expiry and last use (never the tokens themselves)."""
    table = Table("token", "role", "party / scope", "created", "expires", "last used", "revoked")
    with registry() as store:
        found = store.tokens()
    for token in found:
        scope = token.party_id or ", ".join((*token.scope_parties, *token.scope_jurisdictions))
        table.add_row(
            token.token_id,
            token.role,
            scope or "all",
            _when(token.created_at),
            _when(token.expires_at),
            _when(token.last_used_at),
            _when(token.revoked_at),
        )
    console.print(table)


@tokens_app.command("revoke")
def tokens_revoke(token_id: str) -> None:
    """Revoke an API token."""
    try:
        with registry() as store:
            store.revoke_token(token_id, actor=actor())
    except RegistryError as error:
        raise fail(str(error)) from error
    cache = get_settings().registry_cache_s
    console.print(f"token {token_id} revoked (refused everywhere within {cache:g} s)")


# --- plants ----------------------------------------------------------------------------------


@plants_app.command("rotate-secret")
def plants_rotate_secret(
    party: Annotated[str, typer.Option(help="The plant's party id.")],
    grace_hours: Annotated[
        float | None,
        typer.Option(
            min=0,
            help="How long the previous secret stays valid "
            "(default: CUSTODY_WEBHOOK_SECRET_GRACE_S, 24 h).",
        ),
    ] = None,
) -> None:
    """Issue a new webhook secret for a plant; prints it once. The old one expires after grace."""
    grace = (
        timedelta(hours=grace_hours)
        if grace_hours is not None
        else timedelta(seconds=get_settings().webhook_secret_grace_s)
    )
    try:
        with registry() as store:
            secret = store.rotate_plant_secret(party, grace, actor=actor())
    except RegistryError as error:
        raise fail(str(error)) from error
    errors.print(
        f"new webhook secret of {party} (shown once); any previous secret stays valid "
        f"for {grace.total_seconds() / 3600:g} h:"
    )
    print(secret)


@plants_app.command("set-webhook")
def plants_set_webhook(
    party: Annotated[str, typer.Option(help="The plant's party id.")],
    url: Annotated[str, typer.Option(help="Where to POST shipment.inbound notifications.")],
    new_secret: Annotated[
        bool, typer.Option(help="Replace the signing secret (the plant must switch at once).")
    ] = False,
) -> None:
    """Set (or change and re-enable) where a plant receives inbound-shipment notifications.

    The first call issues the secret the notifications are signed with and prints it once.
    """
    try:
        with registry() as store:
            result = store.set_plant_endpoint(party, url, rotate_secret=new_secret, actor=actor())
    except RegistryError as error:
        raise fail(str(error)) from error
    errors.print(f"{party} receives shipment.inbound notifications at {result.url} (enabled)")
    if result.new_secret is not None:
        errors.print("signing secret (shown once; verify with any Standard Webhooks library):")
        print(result.new_secret)


# --- the audit trail -------------------------------------------------------------------------


def registry_audit(
    after: Annotated[int | None, typer.Option(help="Only records after this id.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """The registry's audit trail: who changed what, before and after, when."""
    table = Table("id", "when", "actor", "action", "subject", "before", "after")
    with registry() as store:
        found = store.audit_trail(after_id=after, limit=limit)
    if as_json:
        for record in found:
            print(json.dumps({**asdict(record), "at": record.at.isoformat()}, sort_keys=True))
        return
    for record in found:
        table.add_row(
            str(record.id),
            _when(record.at),
            record.actor,
            record.action,
            record.subject,
            str(record.before or ""),
            str(record.after or ""),
        )
    console.print(table)
