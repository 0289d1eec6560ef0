"""Steady load, run as its own process: POST batches at a fixed event rate and time each
sampled event from its POST until the ledger's custody trail shows it.

python -m bench.steady_load INGEST_URL LEDGER_URL DEVICE_TOKEN AUDITOR_TOKEN RATE SECONDS BATCH
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections import Counter, deque
from datetime import UTC, datetime, timedelta

import httpx
import orjson

# The observer is kept light, as it shares the two cores with what it measures: following
# every other batch at 100 polls a second put up to ~1,000 trail requests a second on the
# ledger API whenever visibility slowed, and one follower per sample polling every 20 ms
# still put ~50 a second on it on a slower host, while visibility lagged by seconds; so one
# TrailWatcher polls with one request at a time.
SAMPLE_EVERY = 4  # batches; the first event of each sampled batch is followed to the trail
TRAIL_POLL_S = 0.02  # the shortest poll interval, the resolution of the visibility figures


def container_id(number: int, prefix: str) -> str:
    return f"{prefix}-{number:07d}"


def dropoff(number: int, prefix: str) -> dict[str, object]:
    return {
        "event_id": str(uuid.uuid4()),
        "type": "dropoff",
        "container_id": container_id(number, prefix),
        "occurred_at": (datetime.now(UTC) - timedelta(minutes=5)).isoformat(),
        "location_id": "loc-bench",
        "chemistry": "li_ion",
        "battery_count": 40,
    }


class TrailWatcher:
    """Times sampled containers from their POST until the trail shows them (404 until then).

    Oldest sample first, one trail request at a time, the next poll of a sample that is not
    visible yet after 20 ms or a tenth of its wait, whichever is longer: the observer's load on
    the ledger API stays bounded (about 20 requests a second) when visibility lags, instead of
    growing with the lag and slowing what it measures. Figures only err late: by the poll
    interval, and for a sample that became visible before an older one, by that older one's
    wait (the consumer appends in order, so that one is seldom long).
    """

    def __init__(self, ledger: httpx.AsyncClient) -> None:
        self._ledger = ledger
        self._pending: deque[tuple[str, float]] = deque()
        self.visible: list[float] = []
        self.polls = 0

    def expect(self, container: str, sent_at: float) -> None:
        self._pending.append((container, sent_at))

    async def run(self, posting_done: asyncio.Event) -> None:
        while self._pending or not posting_done.is_set():
            if not self._pending:
                await asyncio.sleep(TRAIL_POLL_S)
                continue
            container, sent_at = self._pending[0]
            self.polls += 1
            try:
                response = await self._ledger.get(f"/v1/containers/{container}/custody")
            except httpx.HTTPError:
                response = None
            waited = time.perf_counter() - sent_at
            if response is not None and response.status_code == 200:
                self.visible.append(waited)
                self._pending.popleft()
            else:
                await asyncio.sleep(max(TRAIL_POLL_S, waited / 10))


async def main(
    ingest_url: str,
    ledger_url: str,
    device_token: str,
    auditor_token: str,
    rate: float,
    seconds: float,
    batch: int,
) -> None:
    prefix = f"E{uuid.uuid4().hex[:6]}"
    requests = int(rate * seconds / batch)
    interval = batch / rate
    headers = {"Authorization": f"Bearer {device_token}", "Content-Type": "application/json"}
    post_latency: list[float] = []
    behind: list[float] = []
    refusals: Counter[str] = Counter()
    last_ack = 0.0
    # Built before the clock starts, as wrk's are, so the load generator's own CPU goes to
    # sending: it shares the two cores with what it measures.
    bodies = [
        orjson.dumps(
            {"events": [dropoff(number * batch + offset, prefix) for offset in range(batch)]}
        )
        for number in range(requests)
    ]
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with (
        httpx.AsyncClient(base_url=ingest_url, limits=limits, timeout=60) as ingest,
        httpx.AsyncClient(
            base_url=ledger_url,
            headers={"Authorization": f"Bearer {auditor_token}"},
            limits=limits,
            timeout=60,
        ) as ledger,
    ):

        async def send(number: int) -> None:
            nonlocal last_ack
            sent_at = time.perf_counter()
            try:
                response = await ingest.post(
                    "/v1/events/batch", content=bodies[number], headers=headers
                )
            except httpx.HTTPError as error:
                refusals[type(error).__name__] += batch
                return
            post_latency.append(time.perf_counter() - sent_at)
            if response.status_code != 200:
                refusals[str(response.status_code)] += batch
                return
            last_ack = max(last_ack, time.perf_counter())
            if number % SAMPLE_EVERY == 0:
                watcher.expect(container_id(number * batch, prefix), sent_at)

        watcher = TrailWatcher(ledger)
        posting_done = asyncio.Event()
        watching = asyncio.create_task(watcher.run(posting_done))
        started = time.perf_counter()
        tasks = []
        for number in range(requests):
            due = started + number * interval
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                behind.append(-delay)
            tasks.append(asyncio.create_task(send(number)))
        await asyncio.gather(*tasks)
        posting_done.set()
        await watching
    visible = sorted(watcher.visible)
    post_latency.sort()
    acknowledged = requests * batch - refusals.total()

    def percentile(samples: list[float], fraction: float) -> float:
        return samples[min(len(samples) - 1, int(len(samples) * fraction))] * 1000

    print(
        json.dumps(
            {
                "offered_events_per_s": rate,
                "acknowledged_events_per_s": acknowledged / (last_ack - started),
                "refused_events": dict(refusals),
                "samples": len(visible),
                "visible_p50_ms": percentile(visible, 0.5),
                "visible_p99_ms": percentile(visible, 0.99),
                "post_p50_ms": percentile(post_latency, 0.5),
                "post_p99_ms": percentile(post_latency, 0.99),
                "max_schedule_lag_ms": max(behind, default=0.0) * 1000,
                "trail_polls_per_s": watcher.polls / (time.perf_counter() - started),
            }
        )
    )


if __name__ == "__main__":
    ingest_url, ledger_url, device_token, auditor_token, rate, seconds, batch = sys.argv[1:8]
    asyncio.run(
        main(
            ingest_url,
            ledger_url,
            device_token,
            auditor_token,
            float(rate),
            float(seconds),
            int(batch),
        )
    )
