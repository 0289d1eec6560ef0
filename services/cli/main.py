"""The ``custody`` command line (docs/architecture.md §5); its parts come from the bootstrap."""

from __future__ import annotations

import json
import logging
import secrets
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
import uvicorn
from pydantic import ValidationError
from rich.markup import escape
from rich.table import Table
from sqlalchemy.exc import OperationalError

from services.bootstrap import (
    Resources,
    build_checkpointer,
    build_consumer,
    build_notifier,
    build_subscription_delivery,
    checkpointer_checks,
    consumer_checks,
    custody_rules,
    resources,
    worker_checks,
)
from services.cli.log_commands import log_app, monitor
from services.cli.output import console, counting_progress, errors, fail
from services.cli.registry_commands import (
    devices_app,
    parties_app,
    plants_app,
    registry,
    registry_audit,
    tokens_app,
)
from services.cli.trust_options import print_checkpoint_trust, read_key_argument, read_trust
from services.contract.json_schemas import write_schemas
from services.db.migrations import upgrade
from services.ingest.worker_pool import serve_pool
from services.ledger.adapters.merkle_log import tree_size
from services.ledger.adapters.signing_keys import create_key, verifier_path
from services.ledger.consumer.runner import LedgerConsumer
from services.ledger.domain.integrity.bundle import MalformedBundle, load_json
from services.ledger.domain.integrity.checkpoint import CheckpointError
from services.ledger.domain.integrity.tlog_proof import TLOG_PROOF_HEADER
from services.ledger.domain.integrity.verification import (
    BundleError,
    VerificationError,
    verify_bundle,
    verify_tlog_proof,
)
from services.ledger.service.audit import audit_ledger
from services.ledger.service.rebuild import count_containers, rebuild_read_model
from services.logging_setup import configure_logging
from services.registry.principals import ApiRole
from services.registry.store import RegistryError
from services.settings import Settings, configuration_problems, get_settings
from services.simulation.runner import SimulationError
from services.simulation.runner import simulate as post_scenario
from services.simulation.scenario import ScenarioConfig, build_scenario
from services.stack.local import LocalStack
from services.stack.processes import StackError
from services.stack.service_processes import start_services
from services.web.ops import ReadinessCheck
from services.web.ops_server import OpsServer

app = typer.Typer(
    help="Battery Custody: verifiable chain of custody for battery recycling.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
stack_app = typer.Typer(help="The local Kafka broker and PostgreSQL server.", no_args_is_help=True)
app.add_typer(stack_app, name="stack")
app.add_typer(parties_app, name="parties")
app.add_typer(devices_app, name="devices")
app.add_typer(tokens_app, name="tokens")
app.add_typer(plants_app, name="plants")
app.command("registry-audit")(registry_audit)
app.add_typer(log_app, name="log")
app.command()(monitor)


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
    CHECKPOINTER = "checkpointer"
    NOTIFIER = "notifier"


def run_until_signalled(run: Callable[[threading.Event], None], logger: str) -> None:
    stop = threading.Event()

    def on_signal(signum: int, _: FrameType | None) -> None:
        logging.getLogger(logger).info("signal %d: finishing the work in hand", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    run(stop)


def run_together(stop: threading.Event, *runs: Callable[[threading.Event], None]) -> None:
    """Each ``run`` in a thread of its own until ``stop``; returns once all have returned."""
    threads = [threading.Thread(target=run, args=(stop,), daemon=True) for run in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


@contextmanager
def ops_endpoint(
    settings: Settings, port: int, checks: Mapping[str, ReadinessCheck]
) -> Iterator[None]:
    """/metrics, /healthz and /readyz while the service runs; port 0 serves none."""
    if port == 0:
        yield
        return
    try:
        server = OpsServer(settings.ops_host, port, checks).start()
    except OSError as error:
        raise fail(
            f"cannot serve /metrics on {settings.ops_host}:{port}: {error.strerror or error}"
        ) from error
    try:
        yield
    finally:
        server.stop()


@app.command()
def serve(service: Service) -> None:
    """Run one service in the foreground until SIGTERM/SIGINT."""
    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)
    if service is Service.INGEST:
        raise typer.Exit(serve_pool(settings))
    if service is Service.LEDGER:
        uvicorn.run(
            "services.bootstrap:build_ledger_api",
            factory=True,
            host=settings.ledger_host,
            port=settings.ledger_port,
            log_level="warning",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=settings.shutdown_grace_s,
        )
    else:
        with resources(settings) as opened:
            serve_worker(service, opened)


def serve_worker(service: Service, opened: Resources) -> None:
    """The consumer, notifier or checkpointer, with its ops endpoint, until a signal."""
    settings = opened.settings
    if service is Service.CONSUMER:
        consumer: LedgerConsumer | None = None
        checks = consumer_checks(opened, lambda: consumer)
        with ops_endpoint(settings, settings.consumer_ops_port, checks):
            consumer = build_consumer(settings)
            run_until_signalled(consumer.run, "custody.consumer")
    elif service is Service.NOTIFIER:
        checks = worker_checks(opened, "notifier")
        with ops_endpoint(settings, settings.notifier_ops_port, checks):
            notifier = build_notifier(opened)
            subscriptions = build_subscription_delivery(opened)
            run_until_signalled(
                lambda stop: run_together(stop, notifier.run, subscriptions.run),
                "custody.notifier",
            )
    else:
        try:
            checkpointer = build_checkpointer(opened)
        except CheckpointError as error:
            raise fail(str(error)) from error
        checks = checkpointer_checks(opened, checkpointer)
        with ops_endpoint(settings, settings.checkpointer_ops_port, checks):
            run_until_signalled(checkpointer.run, "custody.checkpointer")


keys_app = typer.Typer(help="The checkpoint signing key.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("init")
def keys_init(
    force: Annotated[bool, typer.Option(help="Replace an existing key.")] = False,
) -> None:
    """Create the Ed25519 checkpoint signing key (mode 0600) and print the verifier key."""
    settings = get_settings()
    try:
        verifier = create_key(settings.signing_key_file, settings.log_origin, force=force)
    except FileExistsError as error:
        raise fail(str(error)) from error
    errors.print(
        f"signing key written to {settings.signing_key_file} (mode 0600); "
        f"verifier key in {verifier_path(settings.signing_key_file)}:"
    )
    print(verifier)


@app.command()
def rebuild() -> None:
    """Recompute the containers read model from the ledger entries (they are never changed)."""
    with resources() as opened, counting_progress("rebuilding") as progress:
        engine = opened.engine("custody-rebuild")
        task = progress.add_task("containers", total=count_containers(engine))
        done = rebuild_read_model(
            engine,
            custody_rules(opened.settings),
            on_progress=lambda count: progress.update(task, completed=count),
        )
    console.print(f"[green]✓[/] read model rebuilt for {done} containers")


@app.command()
def verify(
    bundle: Annotated[
        Path, typer.Argument(help="A bundle downloaded from …/bundle, or a .tlog-proof file.")
    ],
    key: Annotated[str | None, typer.Option(help="Verifier key, or a file holding it.")] = None,
    policy: Annotated[
        Path | None,
        typer.Option(help="A c2sp.org/tlog-policy file: log keys, witnesses and their quorum."),
    ] = None,
    trusted_checkpoint: Annotated[
        Path | None, typer.Option(help="An older signed checkpoint note you trust.")
    ] = None,
    entry: Annotated[
        Path | None,
        typer.Option(help="For a tlog-proof without extra data: the entry's bytes (E)."),
    ] = None,
) -> None:
    """Verify a bundle or a tlog-proof offline: hashes, chain, inclusion, signatures, quorum."""
    trust = read_trust(key, policy)
    try:
        data = bundle.read_bytes()
        trusted = trusted_checkpoint.read_text() if trusted_checkpoint else None
        if data.startswith(TLOG_PROOF_HEADER.encode()):
            proven = verify_tlog_proof(data.decode(), trust, entry.read_bytes() if entry else None)
            console.print(
                f"[green]✓[/] entry seq {proven.seq} "
                f"({proven.document['event'].get('container_id')}) included in the log at size "
                f"{proven.checkpoint.tree_size} (root {proven.checkpoint.root_hash.hex()[:16]}…)"
            )
            print_checkpoint_trust(trust, proven.cosigned_by)
            return
        report = verify_bundle(load_json(data), trust, trusted)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise fail(f"cannot read input: {error}") from error
    except (MalformedBundle, BundleError) as error:
        raise fail(f"bundle does NOT verify: {error}") from error
    except (VerificationError, CheckpointError) as error:
        raise fail(f"tlog-proof does NOT verify: {error}") from error
    console.print(
        f"[green]✓[/] {report.entries} entries of {report.container_id}: hashes and chain"
    )
    console.print(
        f"[green]✓[/] entry seq {report.head_seq} included in the log at size "
        f"{report.checkpoint.tree_size} (root {report.checkpoint.root_hash.hex()[:16]}…)"
    )
    print_checkpoint_trust(trust, report.cosigned_by)
    if report.trusted_size is not None:
        console.print(
            f"[green]✓[/] consistent with your trusted checkpoint of size {report.trusted_size}"
        )


@app.command()
def audit(
    key: Annotated[
        str | None, typer.Option(help="Verifier key or file; default the local .pub file.")
    ] = None,
) -> None:
    """Recompute every entry hash, chain link and checkpoint root; exit 1 on any mismatch."""
    settings = get_settings()
    try:
        verifier = read_key_argument(key or str(verifier_path(settings.signing_key_file)))
    except (OSError, CheckpointError) as error:
        raise fail(f"no verifier key: {error}") from error
    with resources(settings) as opened, counting_progress("auditing") as progress:
        engine = opened.engine("custody-audit")
        with engine.connect() as connection:
            task = progress.add_task("entries", total=tree_size(connection))
        report = audit_ledger(
            engine, verifier, on_entry=lambda seq: progress.update(task, completed=seq + 1)
        )
    for message in report.checkpoint_problems:
        errors.print(f"[red]✗[/] {message}")
    for problem in report.entry_problems:
        errors.print(
            f"[red]✗[/] entry seq {problem.seq} ({problem.container_id}): {problem.problem}"
        )
    if not report.ok:
        first = report.first_bad_entry
        where = f"; first bad entry: seq {first.seq}" if first else ""
        raise fail(f"audit FAILED{where}")
    console.print(
        f"[green]✓[/] {report.checked} entries and {len(report.checkpoints)} checkpoints verified"
    )


@app.command()
def simulate(
    containers: Annotated[
        int, typer.Option(min=1, max=99_999, help="Container lives to simulate.")
    ] = 300,
    days: Annotated[
        int, typer.Option(min=1, max=365, help="Spread the lives over the last N days.")
    ] = 30,
    seed: Annotated[int, typer.Option(help="Seed of the scenario (same seed, same plan).")] = 7,
    ingest_url: Annotated[
        str | None,
        typer.Option(help="Ingest base URL (default: from CUSTODY_INGEST_HOST and _PORT)."),
    ] = None,
) -> None:
    """Simulate a recycling network: register it and post its scans through the ingest API."""
    run_simulation(get_settings(), containers=containers, days=days, seed=seed, url=ingest_url)


def run_simulation(
    settings: Settings, *, containers: int, days: int, seed: int, url: str | None
) -> None:
    url = url or f"http://{settings.ingest_host}:{settings.ingest_port}"
    run_id = secrets.token_hex(3)
    config = ScenarioConfig(
        run_id=run_id, now=datetime.now(UTC), containers=containers, days=days, seed=seed
    )
    scenario = build_scenario(config)
    console.print(
        f"run [bold]{run_id}[/]: {scenario.summary.containers} containers, "
        f"{scenario.summary.events_to_post} events in {scenario.summary.uploads} uploads "
        f"to {url}"
    )
    try:
        with resources(settings) as opened:
            report = post_scenario(
                url,
                opened.registry(),
                scenario,
                console=console,
                registry_grace_s=settings.registry_cache_s + 0.5,
            )
    except (SimulationError, RegistryError) as error:
        raise fail(str(error)) from error

    table = Table("", "value", title=f"Simulation {run_id} (seed {seed})")
    for label, value in scenario.summary.rows():
        table.add_row(label, value)
    table.add_section()
    for label, value in report.rows():
        table.add_row(label, value)
    console.print(table)
    console.print(
        "note: ingest stamps received_at when the plan is posted, so every event that occurred "
        "more than 24 h ago is also flagged late_arrival; clock_skew needs the run to finish "
        "within ~3 minutes."
    )
    if report.rejected:
        for line in report.rejections:
            errors.print(f"  rejected {line}")
        raise fail(f"{report.rejected} event(s) were rejected")


@app.command()
def demo(
    containers: Annotated[int, typer.Option(min=1, max=99_999)] = 300,
) -> None:
    """Start Kafka, PostgreSQL and the services, load a simulated network, print a token."""
    settings = get_settings()
    stack = LocalStack.from_settings(settings)
    try:
        with console.status("fetching Kafka (first run only), starting Kafka and PostgreSQL…"):
            stack.up()
        if not settings.signing_key_file.exists():
            create_key(settings.signing_key_file, settings.log_origin)
        with console.status("starting ingest, ledger, consumer, checkpointer and notifier…"):
            start_services(settings)
    except StackError as error:
        raise fail(str(error)) from error
    run_simulation(settings, containers=containers, days=30, seed=7, url=None)
    with registry() as store:
        token = store.add_api_token(f"demo-auditor-{secrets.token_hex(3)}", ApiRole.AUDITOR)
    token_file = settings.var_dir / "demo-auditor.token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    ingest = f"http://{settings.ingest_host}:{settings.ingest_port}"
    ledger = f"http://{settings.ledger_host}:{settings.ledger_port}"
    console.print(
        f"""
[bold green]Battery Custody is running.[/]
  ingest API   {ingest}   (docs: {ingest}/docs)
  ledger API   {ledger}   (docs: {ledger}/docs)
  auditor UI   {ledger}/ui/   (sign in with the token below)
  auditor token (also in {token_file}):
    [bold]{token}[/]

Try:
  curl -H "Authorization: Bearer $(cat {token_file})" '{ledger}/v1/containers?limit=5'
  curl -H "Authorization: Bearer $(cat {token_file})" '{ledger}/v1/anomalies'
Stop everything with: make stop   (data stays under {settings.var_dir}/)""",
        soft_wrap=True,
    )


def main() -> None:
    try:
        app()
    except ValidationError as error:
        if error.title != Settings.__name__:
            raise
        problems = "; ".join(configuration_problems(error))
        errors.print(f"[bold red]error:[/] invalid configuration: {escape(problems)}")
        sys.exit(1)
    except StackError as error:
        errors.print(f"[bold red]error:[/] {error}")
        sys.exit(1)
    except OperationalError as error:
        settings = get_settings()
        errors.print(
            f"[bold red]error:[/] cannot reach PostgreSQL ({error.orig or error}). "
            f"Is it running? `custody stack up` starts the local one; CUSTODY_DATABASE_URL "
            f"and CUSTODY_ADMIN_DATABASE_URL say where to connect "
            f"(now {settings.database_url.rsplit('@', 1)[-1]})."
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
