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


MAX_CURSOR_LENGTH = 1000


def decode_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    if not cursor:
        return None
    refusal = InvalidInput("not a cursor this API gave out", field="after")
    # A cursor is ours or it is refused: short, a list of two strings, a valid timestamp.
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise refusal
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        decoded = json.loads(raw)
        if not (isinstance(decoded, list) and len(decoded) == 2
                and all(isinstance(part, str) for part in decoded)):
            raise refusal
        return datetime.fromisoformat(decoded[0]), decoded[1]
    except (ValueError, TypeError, RecursionError):
        raise refusal from None


def page_size(first: int | None) -> int:
    if first is None:
        return 20
    if not 1 <= first <= MAX_PAGE:
        raise InvalidInput(f"must be between 1 and {MAX_PAGE}", field="first")
    return first
