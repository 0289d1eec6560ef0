"""The transparency log checked by code the project did not write (issue #17 item 7).

tests/interop/tlogcheck is a small Go program on the Go checksum database's packages,
golang.org/x/mod/sumdb/note (signed notes) and golang.org/x/mod/sumdb/tlog (RFC 6962 trees,
tiles and proofs). It reads the ledger API, served for real by ``custody serve ledger``, over
its C2SP tlog-tiles path and its proof endpoints, and must accept all of it; then, with one
entry's body rewritten behind the triggers' back, it must name that entry.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi.testclient import TestClient
from sqlalchemy import text

from services.bootstrap import build_consumer, build_ingest_app
from services.db.engine import make_engine
from services.ledger.adapters.signing_keys import create_key, load_private_key
from services.ledger.service.checkpointer import Checkpointer
from services.settings import Settings
from services.stack.ephemeral import CACHE_DIR
from tests.support import events as ev
from tests.support.network import Network, register_network
from tests.support.services import ROOT, running
from tests.support.stack import LiveStack
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

GO_SOURCES = ROOT / "tests" / "interop" / "tlogcheck"
BIN_CACHE = CACHE_DIR / "go-bin"
OLD_SIZE = 260  # one full level-0 tile and a partial one
SIZE = 301  # then a partial tile 0/001.p/45, and 1/000.p/1 above the full one
PROVED_INDEX = 100
TAMPERED_SEQ = 137
WITNESS = "witness.example/w1"
CHECKS = (
    "checkpoint",
    "tree hash",
    "entry bundles",
    "inclusion (Go proof)",
    "consistency (Go proof)",
    "consistency (project proof)",
    "bundle",
    "bundle inclusion (project proof)",
    "bundle tlog-proof",
)


@functools.cache
def go_binary() -> Path:
    """tlogcheck, built once per version of its sources and of Go, outside the checkout.

    Called from the tests, not a fixture, so that a missing toolchain fails them (not skips,
    not errors)."""
    go = shutil.which("go")
    if go is None:
        pytest.fail(
            "the Go toolchain (`go`, 1.26 or later) is not on PATH: this test checks the log "
            "with Go's golang.org/x/mod/sumdb packages and cannot run without it",
            pytrace=False,
        )
    version = subprocess.run(
        [go, "version"], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    digest = hashlib.sha256(version.encode())
    for path in sorted(GO_SOURCES.iterdir()):
        if path.suffix == ".go" or path.name in ("go.mod", "go.sum"):
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    binary = BIN_CACHE / f"tlogcheck-{digest.hexdigest()[:16]}"
    if binary.exists():
        return binary
    BIN_CACHE.mkdir(parents=True, exist_ok=True)
    partial = binary.with_name(f"{binary.name}.{os.getpid()}.tmp")
    # The pinned go.mod and go.sum, and this toolchain: no silent upgrade of either.
    env = {**os.environ, "GOFLAGS": "-mod=readonly -buildvcs=false", "GOTOOLCHAIN": "local"}
    built = subprocess.run(
        [go, "build", "-trimpath", "-o", str(partial), "."],
        cwd=GO_SOURCES,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if built.returncode != 0:
        pytest.fail(f"go build of {GO_SOURCES} failed:\n{built.stderr}", pytrace=False)
    partial.replace(binary)
    return binary


@dataclass(frozen=True)
class ServedLog:
    settings: Settings
    network: Network
    url: str
    verifier_key: str
    container_id: str  # a dropoff under the older checkpoint, sealed under the newer


def _post(ingest: TestClient, network: Network, events: list[dict[str, Any]]) -> None:
    response = ingest.post(
        "/v1/events/batch", json={"events": events}, headers=network.headers("site-a-dev")
    )
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == len(events), response.text


def _cosignature_line(note: str, tree_size: int) -> str:
    """A witness's c2sp.org/tlog-cosignature line: a signature by a key the Go side is not given,
    which it must ignore."""
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    key_id = hashlib.sha256(WITNESS.encode() + b"\n\x04" + public).digest()[:4]
    timestamp = int(time.time())
    body = note.partition("\n\n")[0] + "\n"
    signature = key.sign(f"cosignature/v1\ntime {timestamp}\n{body}".encode())
    raw = key_id + timestamp.to_bytes(8, "big") + signature
    return f"\u2014 {WITNESS} {base64.b64encode(raw).decode()}"


def record(settings: Settings, network: Network, container: str) -> None:
    """OLD_SIZE entries, then SIZE: dropoffs of distinct containers, and one sealed."""
    engine = make_engine(settings.database_url, pool_size=1)

    def count() -> int:
        with engine.connect() as connection:
            found: int = connection.execute(
                text("SELECT count(*) FROM ledger.entries")
            ).scalar_one()
        return found

    checkpointer = Checkpointer(
        engine,
        load_private_key(settings.signing_key_file),
        origin=settings.log_origin,
        interval_s=3600,
        every_entries=1,
    )
    stop = threading.Event()
    thread = threading.Thread(target=build_consumer(settings).run, args=(stop,), daemon=True)
    thread.start()
    try:
        with TestClient(build_ingest_app(settings)) as ingest:
            first = [ev.dropoff(container)] + [
                ev.dropoff(ev.unique_container("GO")) for _ in range(OLD_SIZE - 1)
            ]
            _post(ingest, network, first)
            wait_for(lambda: count() == OLD_SIZE, what=f"{OLD_SIZE} entries")
            signed = checkpointer.checkpoint_now()
            assert signed is not None
            assert signed.tree_size == OLD_SIZE
            rest = [ev.dropoff(ev.unique_container("GO")) for _ in range(SIZE - OLD_SIZE - 1)]
            _post(ingest, network, [*rest, ev.sealed(container)])
            wait_for(lambda: count() == SIZE, what=f"{SIZE} entries")
    finally:
        stop.set()
        thread.join(timeout=30)
    signed = checkpointer.checkpoint_now()
    assert signed is not None
    assert signed.tree_size == SIZE
    with engine.begin() as connection:
        note = connection.execute(
            text("SELECT note FROM ledger.checkpoints WHERE tree_size = :s"), {"s": SIZE}
        ).scalar_one()
        connection.execute(
            text(
                "INSERT INTO ledger.cosignatures (tree_size, witness, line, signed_at) "
                "VALUES (:s, :w, :line, now())"
            ),
            {"s": SIZE, "w": WITNESS, "line": _cosignature_line(note, SIZE)},
        )
    engine.dispose()


@pytest.fixture(scope="module")
def served(stack: LiveStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedLog]:
    folder = tmp_path_factory.mktemp("interop-go")
    settings = stack.settings(signing_key_file=folder / "keys" / "checkpoint.key")
    verifier = create_key(settings.signing_key_file, settings.log_origin)
    network = register_network(settings)
    container = ev.unique_container("GOB")
    record(settings, network, container)
    with running(settings, ["ledger"], folder) as services:
        url = services["ledger"].url
        assert url is not None
        response = httpx.get(f"{url}/v1/checkpoints/key", timeout=30)
        assert response.status_code == 200, response.text
        key = response.json()["verifier_key"]
        assert key == str(verifier)
        yield ServedLog(settings, network, url, key, container)


def run_tlogcheck(served: ServedLog) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(go_binary()),
            "-url",
            served.url,
            "-key",
            served.verifier_key,
            "-token",
            served.network.auditor,
            "-index",
            str(PROVED_INDEX),
            "-old",
            str(OLD_SIZE),
            "-container",
            served.container_id,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_go_sumdb_tlog_accepts_the_log_and_its_proofs(served: ServedLog) -> None:
    result = run_tlogcheck(served)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    lines = result.stdout.splitlines()
    for check in CHECKS:
        assert any(line.startswith(f"ok {check}: ") for line in lines), f"{check!r}:\n{output}"
    assert "(1 other signature(s) ignored); tree size 301" in result.stdout
    assert f"entry {PROVED_INDEX} in tree {SIZE}" in result.stdout
    assert f"{SIZE} entries in 2 entry bundles" in result.stdout
    assert f"project's proof {OLD_SIZE} -> {SIZE} as served" in result.stdout
    assert result.stdout.endswith("all checks passed\n")


def test_go_sumdb_tlog_names_an_entry_rewritten_by_the_superuser(served: ServedLog) -> None:
    # Runs after the test above (the rewrite stays): the module's log is not used again.
    superuser = make_engine(served.settings.admin_database_url, pool_size=1)
    with superuser.begin() as connection:
        connection.execute(text("SET LOCAL session_replication_role = replica"))
        connection.execute(
            text(
                "UPDATE ledger.entries SET body = jsonb_set(body, '{location_id}', "
                "'\"loc-rewritten\"') WHERE seq = :seq"
            ),
            {"seq": TAMPERED_SEQ},
        )
    superuser.dispose()

    result = run_tlogcheck(served)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "ok tree hash: " in result.stdout  # the stored tree is untouched; the entry is not
    assert result.stderr.startswith("FAIL entry bundles: 1 of 301 entries"), result.stderr
    assert f"entry {TAMPERED_SEQ}: RecordHash(E) " in result.stderr
    assert "all checks passed" not in result.stdout
