"""Outbound `shipment.inbound` notifications, end to end with the services as processes.

A real HTTP receiver started here plays a script: plant-a's endpoint fails its first deliveries
(503 with Retry-After: 1, 503, 500), then holds the fourth request while the notifier is
SIGKILLed, and answers 200 to the redelivery from the restarted notifier; plant-b's endpoint
answers 410 Gone. Time is compressed by CUSTODY_NOTIFIER_TIME_SCALE; every signature is checked
with the Standard Webhooks reference library.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError
from typer.testing import CliRunner, Result

from services.cli import main as cli
from services.db.engine import make_engine
from services.ledger.domain.delivery_policy import RetryPolicy
from services.registry.principals import ApiRole, PartyRole
from services.registry.store import RegistryStore
from services.settings import get_settings
from tests.support import events as ev
from tests.support.network import register_network
from tests.support.services import running, start_service
from tests.support.stack import LiveStack
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e

SCALE = 0.001  # 5 s → 5 ms, 5 min → 0.3 s, 30 min → 1.8 s
RETRY_AFTER_S = 1.0


# --- a scripted receiver ---------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    hold: bool = False  # block until the test releases it


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() on arrival


class Receiver:
    """A real HTTP server on 127.0.0.1 answering each path from its script, then 200."""

    def __init__(self, script: dict[str, list[Answer]]) -> None:
        self._script = {path: list(answers) for path, answers in script.items()}
        self._lock = threading.Lock()
        self.requests: list[Received] = []
        self.holding = threading.Event()
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                answer = receiver.take(self.path, dict(self.headers.items()), body)
                if answer.hold:
                    receiver.holding.set()
                    receiver.release.wait(60)
                try:
                    self.send_response(answer.status)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.send_header("content-length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the client is gone (killed while we held its request)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def take(self, path: str, headers: dict[str, str], body: bytes) -> Answer:
        with self._lock:
            self.requests.append(Received(path, headers, body, time.monotonic()))
            answers = self._script.get(path, [])
            return answers.pop(0) if answers else Answer(200)

    def received(self, path: str) -> list[Received]:
        with self._lock:
            return [item for item in self.requests if item.path == path]

    @contextmanager
    def serving(self) -> Iterator[Receiver]:
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.release.set()
            self._server.shutdown()
            self._server.server_close()


# --- helpers ---------------------------------------------------------------------------------


def set_webhook(party: str, url: str) -> Result:
    """``custody plants set-webhook`` in-process (CUSTODY_DATABASE_URL set by the test)."""
    return CliRunner().invoke(cli.app, ["plants", "set-webhook", "--party", party, "--url", url])


def life(container: str, destination: str | None) -> list[tuple[str, dict[str, Any]]]:
    base = datetime.now(UTC) - timedelta(hours=3)
    pickup: dict[str, Any] = {
        "from_party": "site-a",
        "to_party": "hauler-a",
        "shipment_id": f"BOL-{container}",
    }
    if destination is not None:
        pickup["destination_party"] = destination
    return [
        ("site-a-dev", ev.event("dropoff", container, 0, base=base, chemistry="li_ion")),
        (
            "site-a-dev",
            ev.event(
                "sealed",
                container,
                1,
                base=base,
                weight_kg=50.5,
                un_numbers=["UN3480", "UN3481"],
                ddr=["damaged"],
            ),
        ),
        ("hauler-a-dev", ev.event("pickup", container, 2, base=base, **pickup)),
    ]


def instant(value: str) -> datetime:
    return datetime.fromisoformat(value)


# --- the test --------------------------------------------------------------------------------


def test_inbound_shipment_notifications_retry_sign_and_survive_a_kill(
    stack: LiveStack,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    settings = stack.settings(
        notifier_time_scale=SCALE,
        notifier_poll_s=0.05,
        notifier_jitter_seed="7",
        notifier_timeout_s=30.0,
        notifier_concurrency=2,
    )
    network = register_network(settings)
    engine = make_engine(settings.database_url, pool_size=1)
    RegistryStore(engine).add_party("plant-b", "Plant B", PartyRole.PLANT)
    monkeypatch.setenv("CUSTODY_DATABASE_URL", settings.database_url)
    get_settings.cache_clear()
    request.addfinalizer(get_settings.cache_clear)
    receiver = Receiver(
        {
            "/plant-a": [
                Answer(503, {"Retry-After": str(int(RETRY_AFTER_S))}),
                Answer(503),
                Answer(500),
                Answer(200, hold=True),
            ],
            "/plant-b": [Answer(410)],
        }
    )

    def endpoint(party: str) -> tuple[bool, str | None]:
        with engine.connect() as connection:
            row = connection.execute(
                text(
                    "SELECT enabled, disabled_reason FROM registry.plant_endpoints "
                    "WHERE party_id = :p"
                ),
                {"p": party},
            ).one()
        return bool(row.enabled), row.disabled_reason

    with receiver.serving():
        # set-webhook: the secret is printed once; plants only.
        url_a, url_b = f"{receiver.base_url}/plant-a", f"{receiver.base_url}/plant-b"
        first = set_webhook("plant-a", url_a)
        assert first.exit_code == 0, first.stderr
        secret_a = first.stdout.strip()
        assert secret_a.startswith("whsec_")
        again = set_webhook("plant-a", url_a)
        assert again.exit_code == 0, again.stderr
        assert again.stdout == ""  # kept, not shown again
        setup_b = set_webhook("plant-b", url_b)
        secret_b = setup_b.stdout.strip()
        assert secret_b.startswith("whsec_")
        assert secret_b != secret_a
        refused = set_webhook("hauler-a", url_a)
        assert refused.exit_code == 1
        assert "only plants" in refused.stderr

        to_a, to_b, undirected, to_hub = (ev.unique_container(p) for p in ("NA", "NB", "NU", "NH"))
        with running(settings, ["ingest", "consumer", "ledger", "notifier"], tmp_path) as svc:
            ingest = httpx.Client(base_url=str(svc["ingest"].url), timeout=30)
            ledger = httpx.Client(
                base_url=str(svc["ledger"].url), headers=network.auditor_headers(), timeout=30
            )
            events = {
                to_a: life(to_a, "plant-a"),
                to_b: life(to_b, "plant-b"),
                undirected: life(undirected, None),
                to_hub: life(to_hub, "hub-a"),  # a destination without an endpoint
            }
            for container_events in events.values():
                for device, event in container_events:
                    response = ingest.post(
                        "/v1/events", json=event, headers=network.headers(device)
                    )
                    assert response.status_code == 202, response.text

            # The fourth delivery to plant-a is held by the receiver: kill the notifier then.
            wait_for(receiver.holding.is_set, what="the 4th delivery to plant-a", timeout=60)
            assert len(receiver.received("/plant-a")) == 4
            svc["notifier"].kill()
            receiver.release.set()

            def deliveries(**params: Any) -> dict[str, Any]:
                response = ledger.get("/v1/webhook-deliveries", params=params)
                assert response.status_code == 200, response.text
                body: dict[str, Any] = response.json()
                return body

            # Three failed attempts are recorded, the cut-short fourth is not, nothing delivered.
            before = deliveries(party_id="plant-a")["items"]
            assert [item["attempt"] for item in before] == [1, 2, 3]
            assert {item["notification_status"] for item in before} == {"pending"}

            restarted = start_service(settings, "notifier", tmp_path)
            try:
                wait_for(
                    lambda: deliveries(party_id="plant-a", status="delivered")["items"] != [],
                    what="plant-a's notification delivered after the restart",
                    timeout=60,
                )
            finally:
                restarted.stop()

            items = deliveries(party_id="plant-a")["items"]
            b_items = deliveries(party_id="plant-b")["items"]
            plant_user = RegistryStore(engine).add_api_token(
                "plant-a-user", ApiRole.PARTY, party_id="plant-a"
            )
            own = httpx.get(
                f"{svc['ledger'].url}/v1/webhook-deliveries",
                headers={"Authorization": f"Bearer {plant_user}"},
                timeout=30,
            ).json()["items"]
            assert own
            assert {item["party_id"] for item in own} == {"plant-a"}  # not plant-b's
            pickup_a = events[to_a][2][1]
            entry = ledger.get(f"/v1/events/{pickup_a['event_id']}").json()

            # Pagination and filters.
            page = deliveries(party_id="plant-a", limit=2)
            assert [item["attempt"] for item in page["items"]] == [1, 2]
            rest = deliveries(party_id="plant-a", limit=2, cursor=page["next_cursor"])
            assert [item["attempt"] for item in rest["items"]] == [3, 4]
            assert deliveries(status="failed")["items"] == []
            assert [item["party_id"] for item in deliveries(status="disabled")["items"]] == [
                "plant-b"
            ]
            assert ledger.get("/v1/webhook-deliveries", params={"cursor": "nope"}).status_code == (
                400
            )
            assert httpx.get(f"{svc['ledger'].url}/v1/webhook-deliveries").status_code == 401
            device_answer = httpx.get(
                f"{svc['ledger'].url}/v1/webhook-deliveries", headers=network.headers("site-a-dev")
            )
            assert device_answer.status_code == 403

    # --- every attempt is visible, in order, with its outcome ---------------------------------
    assert [item["attempt"] for item in items] == [1, 2, 3, 4]
    assert [item["status_code"] for item in items] == [503, 503, 500, 200]
    assert items[0]["error"] == "HTTP 503, Retry-After: 1"
    assert items[3]["error"] is None
    assert {item["notification_status"] for item in items} == {"delivered"}
    assert {item["url"] for item in items} == {url_a}
    assert {item["container_id"] for item in items} == {to_a}
    assert items[3]["next_attempt_at"] is None
    notification_id = items[0]["notification_id"]

    # --- the schedule (time compressed): recorded delays within the jitter bounds ------------
    policy = RetryPolicy(time_scale=SCALE)
    slack = 1e-5  # microsecond rounding of stored instants
    for item in items[:3]:
        ended = instant(item["attempted_at"]) + timedelta(milliseconds=item["duration_ms"])
        delay = (instant(item["next_attempt_at"]) - ended).total_seconds()
        low, high = policy.bounds(item["attempt"])
        if item["attempt"] == 1:  # Retry-After: 1 outweighs the 5 ms step: honoured as given
            assert delay == pytest.approx(RETRY_AFTER_S, abs=slack)
        else:
            assert low - slack <= delay <= high + slack, (item["attempt"], delay)
    for earlier, later in pairwise(items):
        # never early; and (before the kill) not much later than due
        assert instant(later["attempted_at"]) >= instant(earlier["next_attempt_at"])
        if later["attempt"] <= 3:
            lateness = instant(later["attempted_at"]) - instant(earlier["next_attempt_at"])
            assert lateness < timedelta(seconds=2), lateness

    # --- what the receiver saw: 5 requests (one cut short), one webhook-id, all signed -------
    seen = receiver.received("/plant-a")
    assert len(seen) == 5
    assert {item.headers["webhook-id"] for item in seen} == {notification_id}
    assert len({item.body for item in seen}) == 1
    for item in seen:
        payload = Webhook(secret_a).verify(item.body, item.headers)
        with pytest.raises(WebhookVerificationError):
            Webhook(secret_b).verify(item.body, item.headers)
    # The receiver's clock: gaps follow the schedule's proportions (Retry-After, 0.3 s, 1.8 s).
    gaps = [later.at - earlier.at for earlier, later in pairwise(seen[:4])]
    assert gaps[0] >= RETRY_AFTER_S
    assert 2.5 <= gaps[2] / gaps[1] <= 9, gaps

    # --- the payload: container, shipment, weights, UN numbers, DDR, expected custodian ------
    assert payload["type"] == "shipment.inbound"
    data = payload["data"]
    assert data == {
        "container_id": to_a,
        "shipment_id": f"BOL-{to_a}",
        "from_party": "site-a",
        "to_party": "hauler-a",
        "destination_party": "plant-a",
        "expected_custodian": "hauler-a",
        "picked_up_at": data["picked_up_at"],
        "weight_kg": 50.5,
        "un_numbers": ["UN3480", "UN3481"],
        "ddr": ["damaged"],
        "ddr_flag": True,
        "event_id": pickup_a["event_id"],
        "ledger_seq": entry["seq"],
        "entry_hash": entry["entry_hash"],
    }
    assert instant(data["picked_up_at"]) == instant(pickup_a["occurred_at"])
    assert orjson.loads(seen[0].body) == payload

    # --- 410: one attempt, endpoint and notification disabled; set-webhook re-enables -------
    assert [(item["attempt"], item["status_code"]) for item in b_items] == [(1, 410)]
    assert b_items[0]["notification_status"] == "disabled"
    assert len(receiver.received("/plant-b")) == 1
    enabled, reason = endpoint("plant-b")
    assert not enabled
    assert reason is not None
    assert "410" in reason
    again_b = set_webhook("plant-b", url_b)
    assert again_b.exit_code == 0, again_b.stderr
    assert again_b.stdout == ""
    assert endpoint("plant-b") == (True, None)

    # --- no notification for a pickup without a destination, or to a party without endpoint -
    with engine.connect() as connection:
        parties = connection.execute(
            text("SELECT party_id FROM ledger.outbox ORDER BY party_id")
        ).scalars()
        assert list(parties) == ["plant-a", "plant-b"]

    # --- the delivery log is append-only, even for the owner --------------------------------
    with pytest.raises(DBAPIError, match="permission denied"), engine.begin() as connection:
        connection.execute(text("UPDATE ledger.webhook_deliveries SET error = 'rewritten'"))
    engine.dispose()
    owner = create_engine(settings.admin_database_url)
    for statement in (
        "UPDATE ledger.webhook_deliveries SET status_code = 200",
        "DELETE FROM ledger.webhook_deliveries",
        "TRUNCATE ledger.webhook_deliveries",
    ):
        with pytest.raises(DBAPIError, match="append-only"), owner.begin() as connection:
            connection.execute(text(statement))
    owner.dispose()
