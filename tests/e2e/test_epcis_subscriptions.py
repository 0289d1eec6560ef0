"""A stream subscription delivers every event of a 5,000-event run once, in ledger order, signed,
across a receiver outage, a notifier killed mid-delivery and a receiver that answers 413.

All services run as processes against the real broker and database; the receiver is a real
HTTP server on 127.0.0.1 that checks ``GS1-Signature`` on every request it gets.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from services.contract.epcis_identifiers import container_uri
from services.db.engine import make_engine
from services.ledger.domain.epcis_subscription import signature_valid
from services.stack.processes import free_port
from tests.support import events as ev
from tests.support.network import register_network
from tests.support.services import running, start_service
from tests.support.stack import LiveStack
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e

TOKEN = "subscriber-shared-secret"
LIMIT = 40  # events per POST the receiver takes once it starts answering 413


@dataclass(frozen=True)
class Delivery:
    status: int
    events: list[dict[str, Any]]
    signed: bool


class Receiver:
    """Records every POST; answers 200, or 413 above LIMIT events, or holds one request."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}/epcis"
        self.deliveries: list[Delivery] = []
        self.limit: int | None = None
        self.hold_next = False
        self.holding = threading.Event()
        self.release = threading.Event()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def _answer(self, body: bytes, signature: str) -> int:
        signed = signature_valid(TOKEN, body, signature)
        try:
            document = json.loads(body)
        except ValueError:  # cut short: the notifier died while sending it
            with self._lock:
                self.deliveries.append(Delivery(400, [], signed))
            return 400
        events = document["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
        with self._lock:
            hold, self.hold_next = self.hold_next, False
            status = 413 if self.limit is not None and len(events) > self.limit else 200
            if hold:
                status = 503  # what it answers if the notifier is still there to hear it
            self.deliveries.append(Delivery(status, events, signed))
        if hold:
            self.holding.set()
            self.release.wait(60)
        return status

    def accepted(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                event for item in self.deliveries if item.status == 200 for event in item.events
            ]

    @contextmanager
    def serving(self) -> Iterator[None]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                status = receiver._answer(body, self.headers.get("GS1-Signature", ""))
                try:
                    self.send_response(status)
                    self.send_header("content-length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the notifier is gone (killed while we held its request)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.release.clear()
        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield
        finally:
            self.release.set()
            server.shutdown()
            server.server_close()


def lives(first: int, count: int, prefix: str) -> list[dict[str, Any]]:
    base = datetime.now(UTC) - timedelta(hours=2)
    events = []
    for number in range(first, first + count):
        container = f"{prefix}-{number:05d}"
        events.append(ev.event("dropoff", container, 0, base=base, chemistry="li_ion"))
        events.append(
            ev.event("sealed", container, 1, base=base, weight_kg=40.0, un_numbers=["UN3480"])
        )
    return events


def test_a_stream_subscription_gets_every_event_once_in_order(
    stack: LiveStack, tmp_path: Path
) -> None:
    settings = stack.settings(notifier_time_scale=0.01, notifier_poll_s=0.05)
    network = register_network(settings)
    engine = make_engine(settings.database_url, pool_size=1)
    prefix = f"SB{time.monotonic_ns() % 10**8:08d}"
    receiver = Receiver(free_port())

    def recorded() -> int:
        with engine.connect() as connection:
            count: int = connection.execute(
                text("SELECT count(*) FROM ledger.entries WHERE container_id LIKE :p"),
                {"p": prefix + "-%"},
            ).scalar_one()
        return count

    def unique() -> int:
        return len({event["eventID"] for event in receiver.accepted()})

    posted: list[dict[str, Any]] = []
    with running(settings, ["ingest", "consumer", "ledger", "notifier"], tmp_path) as svc:
        ingest = httpx.Client(base_url=str(svc["ingest"].url), timeout=60)
        ledger = httpx.Client(
            base_url=str(svc["ledger"].url), headers=network.auditor_headers(), timeout=30
        )

        def post(events: list[dict[str, Any]]) -> None:
            for start in range(0, len(events), 500):
                response = ingest.post(
                    "/v1/events/batch",
                    json={"events": events[start : start + 500]},
                    headers=network.headers("site-a-dev"),
                )
                assert response.status_code == 200, response.text
            posted.extend(events)

        query = {"name": "all-of-run", "query": {"MATCH_anyEPC": [container_uri(prefix) + "*"]}}
        assert ledger.post("/epcis/queries", json=query).status_code == 201
        subscribed = ledger.post(
            "/epcis/queries/all-of-run/subscriptions",
            json={"dest": receiver.url, "signatureToken": TOKEN, "stream": True},
        )
        assert subscribed.status_code == 201, subscribed.text
        subscription = subscribed.headers["location"]

        with receiver.serving():
            post(lives(0, 750, prefix))
            wait_for(lambda: unique() == 1500, what="the first 1,500 events", timeout=120)

        # The receiver is down: events keep being recorded, the subscription keeps failing.
        post(lives(750, 750, prefix))
        wait_for(lambda: recorded() == 3000, what="3,000 entries recorded", timeout=120)
        wait_for(
            lambda: "lastError" in ledger.get(subscription).json(),
            what="a failed delivery recorded",
            timeout=60,
        )
        assert unique() == 1500

        receiver.hold_next = True
        with receiver.serving():
            # Back, but the first delivery is held until the notifier is killed in the middle.
            wait_for(receiver.holding.is_set, what="a delivery in flight", timeout=60)
            svc["notifier"].kill()
            receiver.release.set()
            receiver.limit = LIMIT
            restarted = start_service(settings, "notifier", tmp_path)
            try:
                post(lives(1500, 1000, prefix))
                wait_for(lambda: unique() == 5000, what="all 5,000 events", timeout=240)
            finally:
                restarted.stop()
        shown = ledger.get(subscription).json()

    engine.dispose()
    accepted = receiver.accepted()
    first_seen: dict[str, dict[str, Any]] = {}
    for event in accepted:
        first_seen.setdefault(event["eventID"], event)
    assert set(first_seen) == {f"urn:uuid:{event['event_id']}" for event in posted}
    seqs = [event["bc:ledgerSeq"] for event in first_seen.values()]
    assert seqs == sorted(seqs), "events arrived out of ledger order"
    complete = [item for item in receiver.deliveries if item.status != 400]
    assert all(item.signed for item in complete), "a request without a valid signature"
    # Only what was in flight when the notifier died can come twice (at least once, not more).
    assert len(accepted) - len(first_seen) <= 100
    answered_413 = [item for item in receiver.deliveries if item.status == 413]
    assert answered_413, "the receiver never had to ask for smaller batches"
    after_limit = receiver.deliveries[receiver.deliveries.index(answered_413[0]) :]
    assert all(len(item.events) <= LIMIT for item in after_limit if item.status == 200)
    assert "lastError" not in shown
    assert shown["lastNotifiedAt"]
