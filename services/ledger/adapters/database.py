"""Engine construction; called from a bootstrap, never at import time."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Engine, create_engine


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def make_engine(url: str, *, pool_size: int = 5, application_name: str = "custody") -> Engine:
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        json_serializer=_dumps,
        json_deserializer=orjson.loads,
        connect_args={"application_name": application_name, "connect_timeout": 5},
    )
