"""A failing event is retried, then dead-lettered, then replayed by staff: none is lost."""

from __future__ import annotations

import uuid
from typing import Any

from nameko.standalone.events import event_dispatcher
from nameko.testing.services import entrypoint_waiter

from shared import dead_letters
from shared.messaging import consumes
from tests.helpers import eventually


class Flaky:
    """A consumer that fails until its fault is cleared, like a handler with a bug."""

    name = "flaky"
    broken = True
    applied: list[str] = []

    @consumes("orders", "order_placed")
    def on_order_placed(self, payload: dict[str, Any]) -> None:
        if Flaky.broken:
            raise RuntimeError("bug in the handler")
        Flaky.applied.append(payload["order_id"])


def test_a_poison_event_is_dead_lettered_after_its_retries_and_can_be_replayed(
        container_factory: Any, veta_config: dict[str, Any]) -> None:
    config = {**veta_config, "DEAD_LETTER": {"max_attempts": 3}}
    container = container_factory(Flaky, config)
    container.start()
    order_id = str(uuid.uuid4())
    dispatch = event_dispatcher(config)

    attempts = []

    def third_attempt(worker_ctx: Any, result: Any, exc_info: Any) -> bool:
        attempts.append(exc_info is not None)
        return len(attempts) == 3

    with entrypoint_waiter(container, "on_order_placed", callback=third_attempt, timeout=20):
        dispatch("orders", "order_placed", {"order_id": order_id})
    assert attempts == [True, True, True]

    [letter] = eventually(lambda: dead_letters.list_letters(config))
    assert letter["body"] == {"order_id": order_id}
    assert letter["attempts"] == 3
    assert letter["queue"] == "evt-orders-order_placed--flaky.on_order_placed"
    assert "bug in the handler" in letter["error"]
    # Listing does not consume: the letter is still there.
    assert [x["id"] for x in dead_letters.list_letters(config)] == [letter["id"]]

    Flaky.broken = False
    try:
        with entrypoint_waiter(container, "on_order_placed"):
            dead_letters.replay(config, letter["id"])
    finally:
        Flaky.broken = True
    assert Flaky.applied == [order_id]
    assert dead_letters.list_letters(config) == []


def test_a_discarded_dead_letter_is_gone(container_factory: Any,
                                         veta_config: dict[str, Any]) -> None:
    config = {**veta_config, "DEAD_LETTER": {"max_attempts": 1}}
    container = container_factory(Flaky, config)
    container.start()
    with entrypoint_waiter(container, "on_order_placed"):
        event_dispatcher(config)("orders", "order_placed", {"order_id": "x"})
    [letter] = eventually(lambda: dead_letters.list_letters(config))
    assert dead_letters.discard(config, letter["id"])["id"] == letter["id"]
    assert dead_letters.list_letters(config) == []
