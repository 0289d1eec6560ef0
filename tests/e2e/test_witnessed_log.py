"""The log as the transparency ecosystem sees it, with a real witness (litewitness).

The checkpointer gets every checkpoint cosigned; `custody verify --policy` needs the quorum;
litewitness refuses a fork; `custody monitor` follows the live log and a static export, and
names an entry that the database owner rewrote.
"""

from __future__ import annotations

import functools
import http.server
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from services.ledger.adapters.signing_keys import create_key, load_private_key
from services.ledger.adapters.witness_client import Conflict, Cosigned, Refused, add_checkpoint
from services.ledger.domain.integrity.checkpoint import Checkpoint, sign_checkpoint
from services.settings import Settings
from services.stack.processes import free_port
from services.stack.witness import LocalWitness
from tests.support import events as ev
from tests.support.network import Network, register_network
from tests.support.services import custody, running
from tests.support.stack import LiveStack
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e

WITNESS_NAME = "witness.test/litewitness"


@pytest.fixture
def witness(tmp_path: Path, stack: LiveStack) -> Iterator[LocalWitness]:
    local = LocalWitness(
        home=tmp_path / "witness",
        port=free_port(),
        name=WITNESS_NAME,
        cache_root=stack.settings().cache_dir,
    )
    yield local
    local.stop()


def uncosigned_checkpoints(settings: Settings) -> int:
    engine = create_engine(settings.database_url)
    with engine.connect() as connection:
        count: int = connection.execute(
            text(
                "SELECT count(*) FROM ledger.checkpoints AS k WHERE NOT EXISTS "
                "(SELECT 1 FROM ledger.cosignatures AS c WHERE c.tree_size = k.tree_size)"
            )
        ).scalar_one()
    engine.dispose()
    return count


def dropoffs(count: int, base: datetime) -> list[dict[str, Any]]:
    return [
        ev.event("dropoff", ev.unique_container("WL"), 0, base=base, chemistry="li_ion")
        for _ in range(count)
    ]


def test_every_checkpoint_is_witnessed_and_the_log_can_be_followed_from_outside(
    stack: LiveStack, witness: LocalWitness, tmp_path: Path
) -> None:
    key_file = tmp_path / "keys" / "checkpoint.key"
    probe = stack.settings(signing_key_file=key_file)
    verifier = create_key(key_file, probe.log_origin)
    witness.start(probe.log_origin, str(verifier))
    settings: Settings = stack.settings(
        signing_key_file=key_file,
        checkpoint_interval_s=0.2,
        checkpoint_entries=1,
        witnesses=witness.config(),
    )
    network: Network = register_network(settings)
    base = datetime.now(UTC) - timedelta(hours=2)
    policy = tmp_path / "log.policy"
    state = tmp_path / "monitor.json"

    with running(settings, ["ingest", "consumer", "ledger", "checkpointer"], tmp_path) as svc:
        assert svc["ingest"].url is not None
        assert svc["ledger"].url is not None
        log_url = svc["ledger"].url + "/log"
        ingest = httpx.Client(base_url=svc["ingest"].url, timeout=30)
        ledger = httpx.Client(base_url=svc["ledger"].url, timeout=30)

        def post(events: list[dict[str, Any]]) -> None:
            response = ingest.post(
                "/v1/events/batch", json={"events": events}, headers=network.headers("site-a-dev")
            )
            assert response.status_code == 200, response.text

        def cosigned_at(size: int) -> bool:
            note = ledger.get("/log/checkpoint").text
            return f"\n{size}\n" in note and f"\u2014 {WITNESS_NAME} " in note

        first_events = dropoffs(300, base)
        post(first_events)
        wait_for(lambda: cosigned_at(300), what="the witness's cosignature at size 300")

        # The policy: this log's key and the witness, whose cosignature is required.
        result = custody(settings, "log", "policy", "--url", log_url)
        assert result.returncode == 0, result.stderr
        assert f"witness w1 {witness.key()} {witness.url}" in result.stdout
        assert "quorum w1" in result.stdout
        policy.write_text(result.stdout)

        container = first_events[0]["container_id"]
        bundle = ledger.get(
            f"/v1/containers/{container}/bundle", headers=network.auditor_headers()
        ).json()
        bundle_file = tmp_path / "bundle.json"
        bundle_file.write_text(json.dumps(bundle))
        result = custody(settings, "verify", str(bundle_file), "--policy", str(policy))
        assert result.returncode == 0, result.stderr
        assert "quorum 'w1' met (cosigned by w1)" in result.stdout
        stripped = {
            **bundle,
            "checkpoint": "".join(
                line + "\n"
                for line in bundle["checkpoint"].splitlines()
                if WITNESS_NAME not in line
            ),
        }
        bundle_file.write_text(json.dumps(stripped))
        result = custody(settings, "verify", str(bundle_file), "--policy", str(policy))
        assert result.returncode == 1
        assert "lacks the policy's quorum 'w1'" in result.stderr

        # The monitor follows the log twice as it grows, re-hashing every entry.
        monitor = ["monitor", log_url, "--policy", str(policy), "--state", str(state)]
        monitor += ["--token", network.auditor]
        result = custody(settings, *monitor)
        assert result.returncode == 0, result.stderr
        assert "300 new entries re-hashed" in result.stdout
        post(dropoffs(200, base))
        wait_for(lambda: cosigned_at(500), what="the witness's cosignature at size 500")
        wait_for(
            lambda: uncosigned_checkpoints(settings) == 0, what="a cosignature of every checkpoint"
        )
        result = custody(settings, *monitor)
        assert result.returncode == 0, result.stderr
        assert "consistent with size 300 seen before" in result.stdout
        assert "200 new entries re-hashed" in result.stdout

        # A fork of the signed log, signed with the log's own key: the witness refuses it.
        forged_key = load_private_key(key_file)
        fork = sign_checkpoint(
            Checkpoint(settings.log_origin, 500, bytes(32)), settings.log_origin, forged_key
        )
        with httpx.Client(timeout=10) as client:
            answer = add_checkpoint(client, witness.url, 500, [], fork)
            assert isinstance(answer, Refused), answer
            # tlog-witness says 409 for the same size with another root; litewitness v0.6.1
            # answers 422 "bad consistency proof". Either way: no cosignature for the fork.
            assert answer.status in (409, 422), answer
            grown = sign_checkpoint(
                Checkpoint(settings.log_origin, 501, bytes(32)), settings.log_origin, forged_key
            )
            answer = add_checkpoint(client, witness.url, 500, [bytes(32)] * 9, grown)
            assert isinstance(answer, Refused), answer
            assert answer.status == 422
            stale = add_checkpoint(client, witness.url, 300, [], grown)
            assert stale == Conflict(500)
            assert not isinstance(stale, Cosigned)

    # The public read path as static files, served by a plain web server, followed again.
    export = tmp_path / "static-log"
    result = custody(settings, "log", "export", str(export))
    assert result.returncode == 0, result.stderr
    assert (export / "checkpoint").read_text().count("\u2014 ") == 2
    assert (export / "tile" / "0" / "000").stat().st_size == 256 * 32
    assert (export / "tile" / "0" / "001.p" / "244").stat().st_size == 244 * 32
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(export))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        static_url = f"http://127.0.0.1:{server.server_address[1]}"
        result = custody(
            settings, "monitor", static_url, "--policy", str(policy), "--state", str(state)
        )
        assert result.returncode == 0, result.stderr
        assert "the same tree as seen before (size 500)" in result.stdout
    finally:
        server.shutdown()

    # The owner rewrites one entry behind the triggers' back: the monitor names it.
    superuser = create_engine(settings.admin_database_url)
    with superuser.begin() as connection:
        connection.execute(text("SET LOCAL session_replication_role = replica"))
        edited = connection.execute(
            text(
                "UPDATE ledger.entries SET body = jsonb_set(body, '{chemistry}', '\"lead_acid\"') "
                "WHERE seq = 123 RETURNING seq"
            )
        ).scalar_one()
    superuser.dispose()
    with running(settings, ["ledger"], tmp_path) as svc:
        assert svc["ledger"].url is not None
        fresh = tmp_path / "fresh-monitor.json"
        result = custody(
            settings,
            "monitor",
            svc["ledger"].url + "/log",
            "--policy",
            str(policy),
            "--state",
            str(fresh),
            "--token",
            network.auditor,
        )
    assert result.returncode == 1
    assert f"entry seq {edited}: its content does not hash to leaf {edited}" in result.stderr
