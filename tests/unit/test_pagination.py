"""Opaque keyset cursors and page sizes (shared/pagination.py)."""

import base64
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.errors import InvalidInput
from shared.pagination import MAX_PAGE, decode_cursor, encode_cursor, page_size


def raw_cursor(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# --- cursors --------------------------------------------------------------------------------

def test_a_cursor_round_trips_to_the_same_position() -> None:
    at = datetime(2026, 6, 15, 12, 30, 45, 123456, tzinfo=UTC)
    assert decode_cursor(encode_cursor(at, "lot-42")) == (at, "lot-42")


def test_a_cursor_keeps_the_timezone() -> None:
    at = datetime(2026, 6, 15, 7, 30, tzinfo=timezone(timedelta(hours=-5)))
    decoded = decode_cursor(encode_cursor(at, "x"))
    assert decoded is not None
    assert decoded[0] == at
    assert decoded[0].utcoffset() == timedelta(hours=-5)


def test_a_cursor_is_url_safe_and_unpadded() -> None:
    cursor = encode_cursor(datetime(2026, 1, 1, tzinfo=UTC), "?/+=&" * 7)
    assert "=" not in cursor
    assert "+" not in cursor and "/" not in cursor


@given(st.datetimes(timezones=st.just(UTC)), st.text(max_size=80))
def test_any_position_round_trips(at: datetime, row_id: str) -> None:
    assert decode_cursor(encode_cursor(at, row_id)) == (at, row_id)


@pytest.mark.parametrize("cursor", [None, ""])
def test_no_cursor_means_the_first_page(cursor: str | None) -> None:
    assert decode_cursor(cursor) is None


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage!",
        "é",
        "a",                                    # impossible base64 length
        raw_cursor(b"not json"),
        raw_cursor(b"\xff\xfe\x00"),            # not UTF-8
        raw_cursor(b"42"),                      # not a pair
        raw_cursor(b"null"),
        raw_cursor(b"[]"),
        raw_cursor(b'["2026-01-01T00:00:00+00:00"]'),
        raw_cursor(b'["2026-01-01T00:00:00+00:00", "a", "b"]'),
        raw_cursor(b'["yesterday", "lot-1"]'),  # not a timestamp
        raw_cursor(b'[20260101, "lot-1"]'),      # not a string timestamp
        raw_cursor(b'"ab"'),
    ],
)
def test_a_garbage_cursor_is_invalid_input_on_after(cursor: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        decode_cursor(cursor)
    assert caught.value.field == "after"
    assert caught.value.code == "BAD_USER_INPUT"


def test_a_deeply_nested_cursor_is_invalid_input_on_after() -> None:
    # A caller controls `after`; a cursor that makes the JSON decoder recurse too deeply
    # must still be refused as bad input, not escape as a RecursionError.
    cursor = raw_cursor(b"[" * 100_000)
    with pytest.raises(InvalidInput) as caught:
        decode_cursor(cursor)
    assert caught.value.field == "after"


@given(st.text(max_size=200))
def test_any_text_is_either_a_position_or_invalid_input(cursor: str) -> None:
    try:
        decoded = decode_cursor(cursor)
    except InvalidInput as exc:
        assert exc.field == "after"
        return
    assert decoded is None or (isinstance(decoded[0], datetime) and isinstance(decoded[1], str))


def test_a_cursor_is_the_encoded_timestamp_and_id() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    raw = base64.urlsafe_b64decode(encode_cursor(at, "id-1") + "==")
    assert json.loads(raw) == ["2026-01-01T00:00:00+00:00", "id-1"]


# --- page sizes -----------------------------------------------------------------------------

def test_default_page_size_is_20() -> None:
    assert page_size(None) == 20


@pytest.mark.parametrize("first", [1, 2, 20, 99, MAX_PAGE])
def test_page_sizes_from_1_to_the_maximum_are_accepted(first: int) -> None:
    assert page_size(first) == first


@pytest.mark.parametrize("first", [0, -1, MAX_PAGE + 1, 10_000])
def test_page_sizes_outside_the_bounds_are_invalid_input_on_first(first: int) -> None:
    with pytest.raises(InvalidInput) as caught:
        page_size(first)
    assert caught.value.field == "first"
    assert str(MAX_PAGE) in caught.value.message


def test_maximum_page_is_100() -> None:
    assert MAX_PAGE == 100
