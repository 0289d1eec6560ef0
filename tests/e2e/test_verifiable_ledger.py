"""Bundles verify offline with the services and the database stopped; a rewrite of history
made by the database superuser is found by `custody audit` and by `custody verify`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from services.ledger.adapters.signing_keys import create_key
from services.ledger.domain.integrity.checkpoint import verify_signed_note
from services.ledger.domain.integrity.merkle import verify_inclusion
from tests.support import events as ev
from tests.support.network import Network, register_network
from tests.support.services import custody, running
from tests.support.stack import LiveStack
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e


def life(container: str, base: datetime) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("site-a-dev", ev.event("dropoff", container, 0, base=base, chemistry="li_ion")),
        (
            "site-a-dev",
            ev.event("sealed", container, 1, base=base, weight_kg=50.0, un_numbers=["UN3480"]),
        ),
        (
            "hauler-a-dev",
            ev.event(
                "pickup",
                container,
                2,
                base=base,
                from_party="site-a",
                to_party="hauler-a",
                shipment_id="BOL-V",
            ),
        ),
    ]


def test_bundles_verify_offline_and_rewrites_are_detected(stack: LiveStack, tmp_path: Path) -> None:
    key_file = tmp_path / "keys" / "checkpoint.key"
    settings = stack.settings(
        signing_key_file=key_file, checkpoint_interval_s=0.2, checkpoint_entries=1
    )
    verifier = create_key(key_file, settings.log_origin)
    network: Network = register_network(settings)
    base = datetime.now(UTC) - timedelta(hours=4)
    edited, untouched, other = (ev.unique_container(p) for p in ("VE", "VU", "VO"))

    with running(settings, ["ingest", "consumer", "ledger", "checkpointer"], tmp_path) as svc:
        assert svc["ingest"].url is not None
        assert svc["ledger"].url is not None
        ingest = httpx.Client(base_url=svc["ingest"].url, timeout=30)
        ledger = httpx.Client(
            base_url=svc["ledger"].url, headers=network.auditor_headers(), timeout=30
        )

        def post_all(events: list[tuple[str, dict[str, Any]]]) -> None:
            for device, event in events:
                response = ingest.post("/v1/events", json=event, headers=network.headers(device))
                assert response.status_code == 202, response.text

        def checkpoint_size() -> int:
            response = ledger.get("/v1/checkpoints/latest")
            return int(response.json()["tree_size"]) if response.status_code == 200 else 0

        post_all(life(edited, base) + life(untouched, base))
        wait_for(lambda: checkpoint_size() == 6, what="a checkpoint over 6 entries")
        trusted_note = ledger.get("/v1/checkpoints/latest").json()["note"]
        other_events = life(other, base)
        post_all(other_events)
        wait_for(lambda: checkpoint_size() == 9, what="a checkpoint over 9 entries")

        key_response = ledger.get("/v1/checkpoints/key")
        assert key_response.status_code == 200, key_response.text
        key = key_response.json()["verifier_key"]
        assert key == str(verifier)
        consistency = ledger.get("/v1/checkpoints/consistency", params={"first": 6, "second": 9})
        assert consistency.status_code == 200
        assert len(consistency.json()["consistency_proof"]) >= 1
        proof = ledger.get(f"/v1/events/{other_events[0][1]['event_id']}/proof").json()
        signed = verify_signed_note(proof["checkpoint"], verifier)
        assert signed.tree_size == proof["tree_size"] == 9
        verify_inclusion(
            bytes.fromhex(proof["leaf_hash"]),
            proof["leaf_index"],
            proof["tree_size"],
            [bytes.fromhex(item) for item in proof["inclusion_proof"]],
            signed.root_hash,
        )
        bundles = {}
        for container in (edited, untouched):
            response = ledger.get(f"/v1/containers/{container}/bundle", params={"trusted_size": 6})
            assert response.status_code == 200, response.text
            bundles[container] = tmp_path / f"{container}.bundle.json"
            bundles[container].write_text(response.text)
        old_format = ledger.get(f"/v1/containers/{untouched}/bundle", params={"format": "1"})
        assert old_format.json()["format"] == "battery-custody-bundle/1"
        (tmp_path / "old.bundle.json").write_text(old_format.text)
    (tmp_path / "key.pub").write_text(key)
    (tmp_path / "trusted.note").write_text(trusted_note)

    # Offline: services stopped above, the database stopped here.
    stack.postgres.stop()
    try:
        result = custody(
            settings,
            "verify",
            str(bundles[untouched]),
            "--key",
            str(tmp_path / "key.pub"),
            "--trusted-checkpoint",
            str(tmp_path / "trusted.note"),
        )
        assert result.returncode == 0, result.stderr
        assert "consistent with your trusted checkpoint of size 6" in result.stdout
        result = custody(
            settings,
            "verify",
            str(tmp_path / "old.bundle.json"),
            "--key",
            str(tmp_path / "key.pub"),
        )
        assert result.returncode == 0, result.stderr
    finally:
        stack.postgres.start()

    # A body altered after signing fails, naming the entry.
    document = json.loads(bundles[edited].read_text())
    document["entries"][1]["entry"]["event"]["weight_kg"] = 20.0
    altered = tmp_path / "altered.bundle.json"
    altered.write_text(json.dumps(document))
    result = custody(settings, "verify", str(altered), "--key", key)
    assert result.returncode == 1
    seq = document["entries"][1]["entry"]["seq"]
    assert f"entry seq {seq}: content does not match" in result.stderr

    # The superuser rewrites history behind the triggers' back.
    superuser = create_engine(settings.admin_database_url)
    with superuser.begin() as connection:
        connection.execute(text("SET LOCAL session_replication_role = replica"))
        edited_seq = connection.execute(
            text(
                "UPDATE ledger.entries SET body = jsonb_set(body, '{weight_kg}', '20.0') "
                "WHERE container_id = :c AND event_type = 'sealed' RETURNING seq"
            ),
            {"c": edited},
        ).scalar_one()
        deleted_seq = connection.execute(
            text(
                "DELETE FROM ledger.entries WHERE seq = "
                "(SELECT min(seq) FROM ledger.entries WHERE container_id = :c) RETURNING seq"
            ),
            {"c": other},
        ).scalar_one()
    superuser.dispose()

    result = custody(settings, "audit", "--key", key)
    assert result.returncode == 1
    assert f"entry seq {edited_seq} ({edited}): entry_hash does not match content" in result.stderr
    assert f"seq gap: expected {deleted_seq}, found {deleted_seq + 1}" in result.stderr
    assert "checkpoint size 6: the signed root does not match" in result.stderr
    assert "checkpoint size 9: the ledger holds only 8 entries" in result.stderr
    assert f"first bad entry: seq {edited_seq}" in result.stderr

    with running(settings, ["ledger"], tmp_path) as svc:
        ledger = httpx.Client(base_url=str(svc["ledger"].url), headers=network.auditor_headers())
        for container, expected in ((edited, 1), (untouched, 0)):
            path = tmp_path / f"fresh-{container}.json"
            path.write_text(ledger.get(f"/v1/containers/{container}/bundle").text)
            result = custody(settings, "verify", str(path), "--key", key)
            assert result.returncode == expected, result.stdout + result.stderr
            if expected:
                assert f"entry seq {edited_seq}: content does not match" in result.stderr
