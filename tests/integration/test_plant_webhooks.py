"""Plant webhooks against the real broker and database: signed by the reference library.

A receipt signed with ``standardwebhooks`` is accepted and shows in the custody trail; every bad
delivery is refused with the specified status and produces nothing; a replayed webhook-id is
recorded once; a rotated secret keeps the previous one valid for the grace period only.
"""

from __future__ import annotations

import base64
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from kafka import KafkaConsumer, TopicPartition
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from services.bootstrap import build_consumer, build_ingest_app, build_ledger_api
from services.cli import main as cli
from services.db.engine import make_engine
from services.ingest.domain.receipts import webhook_event_id
from services.ingest.domain.webhook_signature import NO_MATCHING_SIGNATURE
from services.registry.principals import PartyRole
from services.registry.store import RegistryStore, new_webhook_secret
from services.settings import Settings, get_settings
from tests.support import events as ev
from tests.support.network import Network, register_network
from tests.support.stack import LiveStack
from tests.support.waiting import wait_for
from tests.support.webhook_signing import signed_headers

pytestmark = pytest.mark.integration


@dataclass
class Env:
    settings: Settings
    network: Network
    engine: Engine
    registry: RegistryStore
    secret: str  # plant-a's webhook secret
    ingest: TestClient
    ledger: TestClient


@pytest.fixture(scope="module")
def env(stack: LiveStack) -> Iterator[Env]:
    settings = stack.settings()
    network = register_network(settings)
    engine = make_engine(settings.database_url, pool_size=1)
    registry = RegistryStore(engine, cache_seconds=0)
    secret = registry.rotate_plant_secret("plant-a", timedelta(0))
    with (
        TestClient(build_ingest_app(settings)) as ingest,
        TestClient(build_ledger_api(settings)) as ledger,
    ):
        yield Env(settings, network, engine, registry, secret, ingest, ledger)
    engine.dispose()


@pytest.fixture(scope="module")
def consumer(env: Env) -> Iterator[None]:
    stop = threading.Event()
    runner = build_consumer(env.settings)
    thread = threading.Thread(target=runner.run, args=(stop,), daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(timeout=30)


# --- helpers ------------------------------------------------------------------------------


def receipt(container_id: str, **data: Any) -> bytes:
    fields: dict[str, Any] = {
        "container_id": container_id,
        "shipment_id": "BOL-WH-1",
        "received_at": ev.at(6),
        "accepted_weight_kg": 119.5,
        "condition": "ok",
        "plant_reference": f"RCV-{container_id}",
    }
    fields.update(data)
    return orjson.dumps({"type": "receipt.acknowledged", "timestamp": ev.at(6.1), "data": fields})


def post(env: Env, party: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    response: httpx.Response = env.ingest.post(
        f"/v1/webhooks/plants/{party}", content=body, headers=headers
    )
    return response


def topic_size(settings: Settings) -> int:
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    partitions = [
        TopicPartition(settings.topic, p) for p in consumer.partitions_for_topic(settings.topic)
    ]
    size = sum(consumer.end_offsets(partitions).values())
    consumer.close()
    return int(size)


def scalar(env: Env, sql: str, **params: Any) -> Any:
    with env.engine.connect() as connection:
        return connection.execute(text(sql), params).scalar_one()


def entries_of(env: Env, container_id: str) -> int:
    return int(
        scalar(env, "SELECT count(*) FROM ledger.entries WHERE container_id = :c", c=container_id)
    )


def rejections_of(env: Env, container_id: str) -> list[str]:
    with env.engine.connect() as connection:
        return list(
            connection.execute(
                text("SELECT reason_code FROM ledger.rejected WHERE container_id = :c"),
                {"c": container_id},
            ).scalars()
        )


def caught_up(env: Env) -> bool:
    """The consumer has stored offsets up to the end of the topic (fresh topic: starts at 0)."""
    consumed = scalar(
        env,
        "SELECT coalesce(sum(next_offset), 0) FROM ledger.consumer_offsets "
        "WHERE consumer_group = :g AND topic = :t",
        g=env.settings.consumer_group,
        t=env.settings.topic,
    )
    return int(consumed) >= topic_size(env.settings)


def live_until_intake(env: Env, container_id: str) -> None:
    """dropoff → sealed (120 kg) → pickup to hauler-a → intake at plant-a (119 kg)."""
    batch = {
        "events": [
            ev.dropoff(container_id),
            ev.sealed(container_id, weight_kg=120.0),
            ev.transfer("pickup", container_id, 2, "site-a", "hauler-a", shipment_id="BOL-WH-1"),
        ]
    }
    response = env.ingest.post(
        "/v1/events/batch", json=batch, headers=env.network.headers("site-a-dev")
    )
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 3
    intake = ev.transfer("intake", container_id, 5, "hauler-a", "plant-a", weight_kg=119.0)
    response = env.ingest.post(
        "/v1/events", json=intake, headers=env.network.headers("plant-a-dev")
    )
    assert response.status_code == 202, response.text


def trail(env: Env, container_id: str) -> dict[str, Any]:
    response = env.ledger.get(
        f"/v1/containers/{container_id}/custody", headers=env.network.auditor_headers()
    )
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


# --- a good receipt -----------------------------------------------------------------------


def test_a_signed_receipt_is_accepted_and_appears_in_the_trail(env: Env, consumer: None) -> None:
    container = ev.unique_container("WH")
    live_until_intake(env, container)
    body = receipt(container)
    headers = signed_headers(body, env.secret)
    response = post(env, "plant-a", body, headers)
    assert response.status_code == 202, response.text
    event_id = str(webhook_event_id("plant-a", headers["webhook-id"]))
    assert response.json() == {"event_id": event_id, "status": "accepted"}

    wait_for(lambda: entries_of(env, container) == 5, what="5 entries recorded")
    document = trail(env, container)
    assert document["state"] == "acknowledged"
    assert document["custodian"] == "plant-a"
    ack = document["events"][-1]
    assert ack["event_id"] == event_id
    assert ack["type"] == "receipt_ack"
    assert ack["origin"] == {"kind": "webhook", "party_id": "plant-a"}
    assert ack["event"]["location_id"] == "plant-a:webhook"
    assert ack["event"]["plant_reference"] == f"RCV-{container}"
    assert ack["event"]["accepted_weight_kg"] == 119.5
    assert ack["occurred_at"].startswith("2026-11-02T14:00:00")
    codes = {anomaly["code"] for anomaly in ack["anomalies"]}
    assert not codes & {"custody_mismatch", "out_of_order", "weight_discrepancy"}, ack
    wait_for(lambda: caught_up(env), what="the consumer to reach the end of the topic")
    assert entries_of(env, container) == 5
    assert rejections_of(env, container) == []


# --- the bad matrix: refused precisely, nothing produced -----------------------------------

BAD = "BX-WH-refused-1"

Case = Callable[[Env], tuple[str, bytes, dict[str, str]]]


def good(env: Env) -> tuple[str, bytes, dict[str, str]]:
    body = receipt(BAD)
    return "plant-a", body, signed_headers(body, env.secret)


def with_headers(**changes: str | None) -> Case:
    def make(env: Env) -> tuple[str, bytes, dict[str, str]]:
        party, body, headers = good(env)
        for name, value in changes.items():
            header = name.replace("_", "-")
            if value is None:
                del headers[header]
            else:
                headers[header] = value
        return party, body, headers

    return make


def bad_signature(env: Env) -> tuple[str, bytes, dict[str, str]]:
    party, body, headers = good(env)
    headers["webhook-signature"] = "v1," + base64.b64encode(os.urandom(32)).decode()
    return party, body, headers


def wrong_secret(env: Env) -> tuple[str, bytes, dict[str, str]]:
    body = receipt(BAD)
    return "plant-a", body, signed_headers(body, new_webhook_secret())


def signed_at(offset: timedelta) -> Case:
    def make(env: Env) -> tuple[str, bytes, dict[str, str]]:
        body = receipt(BAD)
        return "plant-a", body, signed_headers(body, env.secret, at=datetime.now(UTC) + offset)

    return make


def altered_after_signing(env: Env) -> tuple[str, bytes, dict[str, str]]:
    party, _, headers = good(env)
    return party, receipt(BAD, accepted_weight_kg=1.0), headers


def to_party(party: str) -> Case:
    def make(env: Env) -> tuple[str, bytes, dict[str, str]]:
        _, body, headers = good(env)
        return party, body, headers

    return make


def signed_body(body: bytes) -> Case:
    def make(env: Env) -> tuple[str, bytes, dict[str, str]]:
        return "plant-a", body, signed_headers(body, env.secret)

    return make


CASES: list[tuple[str, Case, int, str]] = [
    # name, request, status, part of the detail
    ("bad signature", bad_signature, 401, NO_MATCHING_SIGNATURE),
    ("wrong secret", wrong_secret, 401, NO_MATCHING_SIGNATURE),
    ("stale timestamp", signed_at(timedelta(minutes=-10)), 401, "too old"),
    ("future timestamp", signed_at(timedelta(minutes=10)), 401, "too new"),
    ("missing webhook-id", with_headers(webhook_id=None), 400, "missing header webhook-id "),
    (
        "missing webhook-timestamp",
        with_headers(webhook_timestamp=None),
        400,
        "missing header webhook-timestamp ",
    ),
    (
        "missing webhook-signature",
        with_headers(webhook_signature=None),
        400,
        "missing header webhook-signature ",
    ),
    ("malformed signature", with_headers(webhook_signature="sig"), 400, "webhook-signature"),
    ("malformed timestamp", with_headers(webhook_timestamp="now"), 400, "webhook-timestamp"),
    ("body altered after signing", altered_after_signing, 401, NO_MATCHING_SIGNATURE),
    ("unknown plant", to_party("plant-zz"), 401, NO_MATCHING_SIGNATURE),
    ("a site's party id", to_party("site-a"), 401, NO_MATCHING_SIGNATURE),
    ("signed, not JSON", signed_body(b'{"type": "receipt.acknowledged",'), 400, "not valid JSON"),
    ("signed, invalid condition", signed_body(receipt(BAD, condition="fine")), 422, "condition"),
    ("signed, unknown field", signed_body(receipt(BAD, colour="red")), 422, "data.colour"),
]


@pytest.mark.parametrize(
    ("make", "status", "detail"), [case[1:] for case in CASES], ids=[case[0] for case in CASES]
)
def test_bad_webhooks_are_refused_precisely_and_produce_nothing(
    env: Env, make: Case, status: int, detail: str
) -> None:
    party, body, headers = make(env)
    before = topic_size(env.settings)
    response = post(env, party, body, headers)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status
    assert detail in problem["detail"], problem
    if status == 401:
        assert "www-authenticate" in response.headers
    assert topic_size(env.settings) == before


def test_refused_webhooks_left_nothing_in_the_ledger(env: Env, consumer: None) -> None:
    wait_for(lambda: caught_up(env), what="the consumer to reach the end of the topic")
    assert entries_of(env, BAD) == 0
    assert rejections_of(env, BAD) == []


# --- replays ------------------------------------------------------------------------------


def test_a_replayed_webhook_id_is_accepted_and_recorded_once(env: Env, consumer: None) -> None:
    container = ev.unique_container("WH")
    live_until_intake(env, container)
    body = receipt(container)
    msg_id = f"msg_{uuid.uuid4().hex}"
    # A sender's retry: same id and body, signed again with a later timestamp.
    first = post(
        env,
        "plant-a",
        body,
        signed_headers(
            body, env.secret, msg_id=msg_id, at=datetime.now(UTC) - timedelta(seconds=60)
        ),
    )
    again = post(env, "plant-a", body, signed_headers(body, env.secret, msg_id=msg_id))
    assert first.status_code == again.status_code == 202, (first.text, again.text)
    assert first.json() == again.json()

    wait_for(lambda: entries_of(env, container) == 5, what="5 entries recorded")
    wait_for(lambda: caught_up(env), what="the consumer to reach the end of the topic")
    assert entries_of(env, container) == 5
    event_id = str(webhook_event_id("plant-a", msg_id))
    assert scalar(env, "SELECT count(*) FROM ledger.entries WHERE event_id = :e", e=event_id) == 1
    assert rejections_of(env, container) == []
    assert "duplicate_conflict" not in {a["code"] for a in trail(env, container)["anomalies"]}


def test_a_webhook_id_reused_for_another_body_is_parked_as_a_conflict(
    env: Env, consumer: None
) -> None:
    container = ev.unique_container("WH")
    live_until_intake(env, container)
    msg_id = f"msg_{uuid.uuid4().hex}"
    original, changed = receipt(container), receipt(container, accepted_weight_kg=80.0)
    assert (
        post(
            env, "plant-a", original, signed_headers(original, env.secret, msg_id=msg_id)
        ).status_code
        == 202
    )
    wait_for(lambda: entries_of(env, container) == 5, what="5 entries recorded")
    assert (
        post(
            env, "plant-a", changed, signed_headers(changed, env.secret, msg_id=msg_id)
        ).status_code
        == 202
    )

    wait_for(lambda: caught_up(env), what="the consumer to reach the end of the topic")
    assert entries_of(env, container) == 5
    assert rejections_of(env, container) == ["duplicate_conflict"]
    ack = trail(env, container)["events"][-1]
    assert ack["event"]["accepted_weight_kg"] == 119.5
    assert "duplicate_conflict" in {a["code"] for a in ack["anomalies"]}


# --- rotation -----------------------------------------------------------------------------


def test_rotation_keeps_the_previous_secret_valid_for_the_grace_period_only(
    env: Env, consumer: None
) -> None:
    env.registry.add_party("plant-r", "Plant R", PartyRole.PLANT)
    container = ev.unique_container("WH")
    body = receipt(container)

    def attempt(secret: str, msg_id: str | None = None) -> int:
        return post(env, "plant-r", body, signed_headers(body, secret, msg_id=msg_id)).status_code

    first = env.registry.rotate_plant_secret("plant-r", timedelta(0))
    assert attempt(first) == 202

    second = env.registry.rotate_plant_secret("plant-r", timedelta(hours=1))
    assert attempt(first) == 202, "the previous secret is valid during the grace period"
    assert attempt(second) == 202
    assert set(env.registry.plant_secrets("plant-r")) == {first, second}

    third = env.registry.rotate_plant_secret("plant-r", timedelta(seconds=1))
    # Poll with one webhook-id: while the old secret still verifies, attempts are replays.
    poll_id = f"msg_{uuid.uuid4().hex}"
    wait_for(
        lambda: attempt(second, poll_id) == 401,
        what="the previous secret to expire after its 1 s grace",
        timeout=30,
    )
    before = topic_size(env.settings)
    assert attempt(second) == 401
    assert attempt(first) == 401, "a rotation shortens every older secret's grace"
    assert topic_size(env.settings) == before
    assert attempt(third) == 202
    assert env.registry.plant_secrets("plant-r") == [third]


def test_cli_rotate_secret_prints_the_new_secret_once(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUSTODY_DATABASE_URL", env.settings.database_url)
    get_settings.cache_clear()
    try:
        env.registry.add_party("plant-cli", "Plant CLI", PartyRole.PLANT)
        runner = CliRunner()
        result = runner.invoke(cli.app, ["plants", "rotate-secret", "--party", "plant-cli"])
        assert result.exit_code == 0, result.output
        secret = result.stdout.strip()
        assert secret.startswith("whsec_")
        assert "shown once" in result.stderr
        assert "24 h" in result.stderr
        body = receipt(ev.unique_container("WH"))
        assert post(env, "plant-cli", body, signed_headers(body, secret)).status_code == 202

        result = runner.invoke(
            cli.app, ["plants", "rotate-secret", "--party", "plant-cli", "--grace-hours", "0"]
        )
        assert result.exit_code == 0, result.output
        newer = result.stdout.strip()
        assert post(env, "plant-cli", body, signed_headers(body, secret)).status_code == 401
        assert post(env, "plant-cli", body, signed_headers(body, newer)).status_code == 202

        refused = runner.invoke(cli.app, ["plants", "rotate-secret", "--party", "site-a"])
        assert refused.exit_code == 1
        assert "only plants have webhook secrets" in refused.stderr
        assert refused.stdout == ""
        unknown = runner.invoke(cli.app, ["plants", "rotate-secret", "--party", "plant-zz"])
        assert unknown.exit_code == 1
        assert "unknown party" in unknown.stderr
    finally:
        get_settings.cache_clear()
