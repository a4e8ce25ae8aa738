"""Turning GraphQL input objects into the plain JSON documents services validate."""

from __future__ import annotations

import datetime as dt
import enum
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
