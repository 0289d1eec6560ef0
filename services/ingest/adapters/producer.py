"""Producing envelopes to Kafka with acks=all and idempotence; awaitable broker acks."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError


class BrokerUnavailable(Exception):
    """Kafka did not acknowledge in time; nothing may be claimed as accepted."""


class EventProducer:
    def __init__(self, bootstrap: str, topic: str, *, timeout_s: float) -> None:
        self._topic = topic
        self._timeout_s = timeout_s
        self._producer = KafkaProducer(
            bootstrap_servers=bootstrap,
            client_id="custody-ingest",
            acks="all",
            enable_idempotence=True,
            linger_ms=2,
            batch_size=256 * 1024,
            max_request_size=2 * 1024 * 1024,
            compression_type=None,
            request_timeout_ms=int(timeout_s * 1000),
            delivery_timeout_ms=int(timeout_s * 1000) + 1000,
            max_block_ms=int(timeout_s * 1000),
            retries=2**31 - 1,
        )

    async def send_all(self, messages: Sequence[tuple[bytes, bytes]]) -> None:
        """Send ``(key, value)`` pairs; return once the broker acked every one of them."""
        loop = asyncio.get_running_loop()
        acked = _AllAcked(loop, len(messages))
        try:
            # send() may block on metadata while the broker is away: keep it off the event loop.
            await loop.run_in_executor(None, self._enqueue, messages, acked)
            async with asyncio.timeout(self._timeout_s + 2):
                await acked.future
        except (KafkaError, TimeoutError) as error:
            raise BrokerUnavailable(str(error) or type(error).__name__) from error

    def _enqueue(self, messages: Sequence[tuple[bytes, bytes]], acked: _AllAcked) -> None:
        for key, value in messages:
            self._producer.send(self._topic, key=key, value=value).add_both(acked.settle_one)

    def close(self) -> None:
        self._producer.close(timeout=10)


class _AllAcked:
    """One awaitable for many broker acks: the event loop is woken once per request, when
    the last ack or the first failure arrives, not once per message."""

    def __init__(self, loop: asyncio.AbstractEventLoop, count: int) -> None:
        self._loop = loop
        self._remaining = count
        self._lock = threading.Lock()
        self.future: asyncio.Future[None] = loop.create_future()
        if count == 0:
            self.future.set_result(None)

    def settle_one(self, outcome: Any) -> None:
        with self._lock:
            if self._remaining <= 0:
                return
            if isinstance(outcome, BaseException):
                self._remaining = 0
            else:
                self._remaining -= 1
                if self._remaining:
                    return
        self._loop.call_soon_threadsafe(self._settle, outcome)

    def _settle(self, outcome: Any) -> None:
        if self.future.done():
            return
        if isinstance(outcome, BaseException):
            self.future.set_exception(outcome)
        else:
            self.future.set_result(None)
