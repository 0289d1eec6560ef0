"""Request bodies read by hand: the size limit first (413), then JSON (400)."""

from __future__ import annotations

import orjson
from fastapi import Request

from services.ingest.domain.errors import Malformed, TooLarge


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused as soon as it exceeds ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge("Payload too large", f"the body is {declared} bytes; the limit is {limit}")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise TooLarge("Payload too large", f"the body exceeds the limit of {limit} bytes")
    return bytes(body)


async def read_json(request: Request, limit: int) -> object:
    body = await read_body(request, limit)
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise Malformed.not_json(error) from error
