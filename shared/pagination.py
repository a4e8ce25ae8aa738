"""Opaque keyset cursors: a page continues after the last (timestamp, id) the caller saw."""

from __future__ import annotations

import base64
import json
from datetime import datetime

from shared.errors import InvalidInput

MAX_PAGE = 100


def encode_cursor(at: datetime, row_id: str) -> str:
    raw = json.dumps([at.isoformat(), row_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, row_id = json.loads(raw)
        return datetime.fromisoformat(at), str(row_id)
    except (ValueError, TypeError):
        raise InvalidInput("not a cursor this API gave out", field="after") from None


def page_size(first: int | None) -> int:
    if first is None:
        return 20
    if not 1 <= first <= MAX_PAGE:
        raise InvalidInput(f"must be between 1 and {MAX_PAGE}", field="first")
    return first
