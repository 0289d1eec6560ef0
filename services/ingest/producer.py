"""Producing envelopes to Kafka with acks=all and idempotence; awaitable broker acks."""

from __future__ import annotations

import asyncio
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
        waiters: list[asyncio.Future[Any]] = [loop.create_future() for _ in messages]
        try:
            # send() may block on metadata while the broker is away: keep it off the event loop.
            await loop.run_in_executor(None, self._enqueue, loop, messages, waiters)
            async with asyncio.timeout(self._timeout_s + 2):
                await asyncio.gather(*waiters)
        except (KafkaError, TimeoutError) as error:
            raise BrokerUnavailable(str(error) or type(error).__name__) from error

    def _enqueue(
        self,
        loop: asyncio.AbstractEventLoop,
        messages: Sequence[tuple[bytes, bytes]],
        waiters: Sequence[asyncio.Future[Any]],
    ) -> None:
        for (key, value), waiter in zip(messages, waiters, strict=True):
            future = self._producer.send(self._topic, key=key, value=value)
            future.add_both(_resolver(loop, waiter))

    def close(self) -> None:
        self._producer.close(timeout=10)


def _resolver(loop: asyncio.AbstractEventLoop, waiter: asyncio.Future[Any]) -> Any:
    def resolve(outcome: Any) -> None:
        loop.call_soon_threadsafe(_settle, waiter, outcome)

    return resolve


def _settle(waiter: asyncio.Future[Any], outcome: Any) -> None:
    if waiter.done():
        return
    if isinstance(outcome, BaseException):
        waiter.set_exception(outcome)
    else:
        waiter.set_result(outcome)
