"""Turning GraphQL input objects into the plain JSON documents services validate."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from decimal import Decimal
from typing import Any


def plain(value: Any) -> Any:
    """Dicts, lists, strings and numbers only; dates as ISO strings, enums as their names."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items() if item is not None}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Decimal):
        return str(value)
    return value


def keyed_command(value: Any) -> dict[str, Any]:
    """A mutation's input as its command, with an idempotency key made up if the client sent
    none: a call the broker delivers again after the service crashed (having committed but
    not acknowledged it) then finds what it did instead of doing it a second time."""
    command: dict[str, Any] = plain(value)
    command.setdefault("idempotency_key", str(uuid.uuid4()))
    return command
