"""A broker that goes away while a handler acknowledges must not take the service with it."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from kombu import Queue

from shared.messaging import RetryingEventHandler


class GoneConsumer:
    """nameko's queue consumer on a connection the broker has just reset."""

    def __init__(self) -> None:
        self.acks = 0

    def ack_message(self, _message: Any) -> None:
        self.acks += 1
        raise ConnectionResetError(104, "Connection reset by peer")

    def requeue_message(self, _message: Any) -> None:
        raise ConnectionResetError(104, "Connection reset by peer")


def test_an_event_handled_as_the_broker_goes_away_is_left_for_redelivery(
        caplog: pytest.LogCaptureFixture) -> None:
    handler = RetryingEventHandler("orders", "order_delivered")
    gone = GoneConsumer()
    handler.queue_consumer = gone
    handler.queue = Queue("evt-orders-order_delivered--payouts.on_order_delivered")

    with caplog.at_level(logging.WARNING, logger="shared.messaging"):
        handler.handle_message_processed(object())

    assert gone.acks == 1
    assert "it will be delivered again" in caplog.text
