"""``custody log policy|export`` and ``custody monitor``: the log as the ecosystem sees it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import httpx
import typer

from services.bootstrap import resources
from services.cli.output import console, counting_progress, fail
from services.cli.trust_options import print_checkpoint_trust, read_trust
from services.ledger.adapters.signing_keys import load_verifier, verifier_path
from services.ledger.domain.integrity.checkpoint import CheckpointError
from services.ledger.service.log_export import export_log
from services.ledger.service.witnessing import parse_witnesses
from services.monitor.follower import LogFollower, MonitorError, MonitorState
from services.settings import get_settings
from services.stack.witness import local_witness_config

log_app = typer.Typer(
    help="The transparency log: its tlog-policy, and its read path as static files.",
    no_args_is_help=True,
)


@log_app.command("policy")
def log_policy(
    url: Annotated[
        str, typer.Option(help="Where the log's read path is served (its tlog-tiles prefix).")
    ] = "",
) -> None:
    """Print a c2sp.org/tlog-policy for this log: its key, its witnesses, all of them required."""
    settings = get_settings()
    try:
        key = load_verifier(verifier_path(settings.signing_key_file))
        witnesses = parse_witnesses(
            settings.witnesses or local_witness_config(settings.var_dir.resolve())
        )
    except (OSError, CheckpointError) as error:
        raise fail(f"cannot read the log's or the witnesses' keys: {error}") from error
    url = url or f"http://{settings.ledger_host}:{settings.ledger_port}/log"
    lines = [f"# {key.name}: the log and the witnesses that cosign its checkpoints", ""]
    lines.append(f"log {key} {url}")
    names = []
    for number, witness in enumerate(witnesses, start=1):
        name = f"w{number}"
        names.append(name)
        lines.append(f"witness {name} {witness.key} {witness.url}")
    if len(names) > 1:
        lines.append(f"group all-witnesses all {' '.join(names)}")
    lines.append(f"quorum {'all-witnesses' if len(names) > 1 else names[0] if names else 'none'}")
    print("\n".join(lines))


@log_app.command("export")
def log_export(
    directory: Annotated[Path, typer.Argument(help="Where to write checkpoint and tile/….")],
    entries: Annotated[
        bool,
        typer.Option(help="Also write the entry bundles (custody data: keep them private)."),
    ] = False,
) -> None:
    """Write the log's read path as static files; re-run to add only what is new."""
    with resources() as opened, counting_progress("exporting tiles") as progress:
        task = progress.add_task("tiles", total=None)
        report = export_log(
            opened.engine("custody-log-export"),
            directory,
            entries=entries,
            on_progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    if report is None:
        raise fail("no checkpoint has been signed yet: nothing to export")
    console.print(
        f"[green]✓[/] log of size {report.tree_size} in {directory}: "
        f"{report.written} tile(s) written, {report.skipped} already there"
    )


def monitor(
    url: Annotated[str, typer.Argument(help="The log's read path, e.g. http://host:8001/log")],
    key: Annotated[str | None, typer.Option(help="The log's verifier key, or its file.")] = None,
    policy: Annotated[
        Path | None, typer.Option(help="A c2sp.org/tlog-policy file (log key, witness quorum).")
    ] = None,
    state: Annotated[
        Path, typer.Option(help="What was verified before; created on the first run.")
    ] = Path("custody-monitor.json"),
    token: Annotated[
        str | None,
        typer.Option(
            envvar="CUSTODY_MONITOR_TOKEN",
            help="An auditor token: also re-hash every entry of the entry bundles.",
        ),
    ] = None,
) -> None:
    """Follow a log: checkpoint signature and quorum, consistency, and (with a token) entries."""
    trust = read_trust(key, policy)
    try:
        known = MonitorState.load(state) or MonitorState()
    except MonitorError as error:
        raise fail(str(error)) from error
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with (
        httpx.Client(base_url=url.rstrip("/") + "/", headers=headers, timeout=30) as client,
        counting_progress("checking entries") as progress,
    ):
        task = progress.add_task("entries", total=None, visible=token is not None)
        follower = LogFollower(
            client,
            trust,
            entries=token is not None,
            on_progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
        try:
            report = follower.follow(known)
        except MonitorError as error:
            raise fail(f"the log does NOT verify: {error}") from error
    known.save(state)
    checkpoint = report.checkpoint
    console.print(
        f"[green]✓[/] checkpoint of {checkpoint.origin} at size {checkpoint.tree_size} "
        f"(root {checkpoint.root_hash.hex()[:16]}…)"
    )
    print_checkpoint_trust(trust, report.cosigned_by)
    if report.previous_size == checkpoint.tree_size:
        console.print(f"[green]✓[/] the same tree as seen before (size {report.previous_size})")
    elif report.previous_size:
        console.print(
            f"[green]✓[/] consistent with size {report.previous_size} seen before (hash tiles)"
        )
    if token is not None:
        console.print(
            f"[green]✓[/] {report.entries_checked} new entries re-hashed to their leaves and root"
        )
    console.print(f"state saved to {state}")
