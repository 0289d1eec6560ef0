"""The ``custody`` command line (DESIGN.md §5)."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from enum import StrEnum
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
import uvicorn
from rich.console import Console
from rich.table import Table

from services.contract.json_schemas import write_schemas
from services.ledger.adapters.database import make_engine
from services.ledger.adapters.migrate import upgrade
from services.registry.principals import ApiRole, PartyRole
from services.registry.store import RegistryError, RegistryStore
from services.settings import get_settings
from services.stack.local import LocalStack
from services.stack.processes import StackError

app = typer.Typer(
    help="Battery Custody: verifiable chain of custody for battery recycling.", no_args_is_help=True
)
stack_app = typer.Typer(help="The local Kafka broker and PostgreSQL server.", no_args_is_help=True)
parties_app = typer.Typer(
    help="Parties of the network (sites, haulers, hubs, plants).", no_args_is_help=True
)
devices_app = typer.Typer(help="Scanner devices and their tokens.", no_args_is_help=True)
tokens_app = typer.Typer(help="Auditor and admin API tokens.", no_args_is_help=True)
app.add_typer(stack_app, name="stack")
app.add_typer(parties_app, name="parties")
app.add_typer(devices_app, name="devices")
app.add_typer(tokens_app, name="tokens")

console = Console()
errors = Console(stderr=True)


def fail(message: str) -> typer.Exit:
    errors.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code=1)


def configure_logging() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("kafka").setLevel(logging.WARNING)


@stack_app.command("up")
def stack_up() -> None:
    """Fetch Kafka once, start Kafka and PostgreSQL, create topics, migrate. Safe to re-run."""
    stack = LocalStack.from_settings(get_settings())
    try:
        with console.status("starting Kafka and PostgreSQL…"):
            stack.up()
    except StackError as error:
        raise fail(str(error)) from error
    for name, state in stack.status().items():
        console.print(f"[green]✓[/] {name}: {state}")


@stack_app.command("down")
def stack_down() -> None:
    """Stop Kafka and PostgreSQL (data stays under var/)."""
    stack = LocalStack.from_settings(get_settings())
    stack.down()
    console.print("stack stopped")


@stack_app.command("status")
def stack_status() -> None:
    """Show whether Kafka and PostgreSQL run."""
    for name, state in LocalStack.from_settings(get_settings()).status().items():
        console.print(f"{name}: {state}")


@app.command()
def migrate() -> None:
    """Apply database migrations as the owner (CUSTODY_ADMIN_DATABASE_URL)."""
    upgrade(get_settings().admin_database_url)
    console.print("database migrated to head")


@app.command()
def schemas(
    out: Annotated[Path, typer.Option(help="Folder to write the JSON Schemas into.")] = Path(
        "schemas"
    ),
) -> None:
    """Write the JSON Schemas generated from the event contract (checked in under schemas/)."""
    for path in write_schemas(out):
        console.print(f"wrote {path}")


class Service(StrEnum):
    INGEST = "ingest"
    LEDGER = "ledger"
    CONSUMER = "consumer"


@app.command()
def serve(service: Service) -> None:
    """Run one service in the foreground until SIGTERM/SIGINT."""
    configure_logging()
    settings = get_settings()
    if service is Service.INGEST:
        uvicorn.run(
            "services.ingest.bootstrap:build_app",
            factory=True,
            host=settings.ingest_host,
            port=settings.ingest_port,
            log_level="warning",
            access_log=False,
        )
    elif service is Service.LEDGER:
        uvicorn.run(
            "services.ledger.bootstrap:build_api",
            factory=True,
            host=settings.ledger_host,
            port=settings.ledger_port,
            log_level="warning",
            access_log=False,
        )
    else:
        from services.ledger.bootstrap import build_consumer

        stop = threading.Event()

        def on_signal(signum: int, _: FrameType | None) -> None:
            logging.getLogger("custody.consumer").info("signal %d: finishing batch", signum)
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        build_consumer(settings).run(stop)


def registry() -> RegistryStore:
    return RegistryStore(make_engine(get_settings().database_url, pool_size=1))


@parties_app.command("add")
def parties_add(
    party_id: Annotated[str, typer.Argument(help="Lower-case id, e.g. site-001.")],
    role: Annotated[PartyRole, typer.Option(help="site, hauler, hub or plant.")],
    name: Annotated[str, typer.Option(help="Display name.")] = "",
) -> None:
    """Register a party."""
    try:
        registry().add_party(party_id, name or party_id, role)
    except RegistryError as error:
        raise fail(str(error)) from error
    console.print(f"party {party_id} ({role}) added")


@devices_app.command("add")
def devices_add(
    device_id: str,
    party: Annotated[str, typer.Option(help="The party the device belongs to.")],
    label: str = "",
) -> None:
    """Register a scanner; prints its token once (only a hash is stored)."""
    try:
        token = registry().add_device(device_id, party, label)
    except RegistryError as error:
        raise fail(str(error)) from error
    errors.print(f"device {device_id} of {party} added; its token (shown once):")
    print(token)


@tokens_app.command("add")
def tokens_add(
    token_id: str,
    role: Annotated[ApiRole, typer.Option(help="auditor or admin.")],
    label: str = "",
) -> None:
    """Create an auditor or admin API token; prints it once."""
    try:
        token = registry().add_api_token(token_id, role, label)
    except RegistryError as error:
        raise fail(str(error)) from error
    errors.print(f"{role} token {token_id} created (shown once):")
    print(token)


@parties_app.command("list")
def parties_list() -> None:
    """List registered parties."""
    table = Table("party", "role")
    for party_id, role in sorted(registry().party_roles(fresh=True).items()):
        table.add_row(party_id, role.value)
    console.print(table)


def main() -> None:
    try:
        app()
    except StackError as error:
        errors.print(f"[bold red]error:[/] {error}")
        sys.exit(1)


if __name__ == "__main__":
    main()
