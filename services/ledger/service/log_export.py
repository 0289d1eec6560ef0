"""``custody log export DIR``: the public read path as static files, written incrementally.

Any static web server or object store can then serve DIR as the log's tlog-tiles prefix.
Full tiles never change, so those already written are skipped; the partial tiles of every
signed size are written (the spec requires them for each checkpoint), the checkpoint last.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, select

from services.ledger.adapters import tables
from services.ledger.adapters.log_tiles import (
    cosignature_lines,
    cosigned_note,
    entry_bundle,
    hash_tile,
)
from services.ledger.adapters.merkle_log import latest_checkpoint
from services.ledger.domain.integrity.tiles import partial_tiles, tiles_for_size


@dataclass(frozen=True, slots=True)
class ExportReport:
    tree_size: int
    written: int
    skipped: int


def export_log(
    engine: Engine,
    directory: Path,
    *,
    entries: bool,
    on_progress: Callable[[int, int], None] = lambda done, total: None,
) -> ExportReport | None:
    """Write every tile of every signed size not yet in ``directory``; None if nothing is signed."""
    with engine.connect() as connection:
        latest = latest_checkpoint(connection)
        if latest is None:
            return None
        sizes = list(
            connection.execute(
                select(tables.checkpoints.c.tree_size).order_by(tables.checkpoints.c.tree_size)
            ).scalars()
        )
        note = cosigned_note(
            latest.note, cosignature_lines(connection, latest.checkpoint.tree_size)
        )
    wanted = {
        ref.path(): ref for ref in tiles_for_size(latest.checkpoint.tree_size, entries=entries)
    }
    for size in sizes:
        for ref in partial_tiles(size, entries=entries):
            wanted.setdefault(ref.path(), ref)
    missing = [ref for path, ref in wanted.items() if not (directory / path).exists()]
    with engine.connect() as connection:
        for done, ref in enumerate(missing, start=1):
            data = entry_bundle(connection, ref) if ref.is_entries else hash_tile(connection, ref)
            _write(directory / ref.path(), data)
            on_progress(done, len(missing))
    _write(directory / "checkpoint", note.encode())
    return ExportReport(latest.checkpoint.tree_size, len(missing), len(wanted) - len(missing))


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(data)
    temporary.replace(path)
