"""The dead-letter queue: where an event goes after failing every retry, until staff act.

A dead letter keeps the original body and headers, plus the queue it came from, how many
times it was tried, the last error and when. `veta dlq` lists, shows, replays (back to its
original queue, with a fresh attempt count) or discards them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from kombu import Connection, Exchange, Queue

ATTEMPTS_HEADER = "x-veta-attempts"
ORIGIN_HEADER = "x-veta-queue"
ERROR_HEADER = "x-veta-error"
FAILED_AT_HEADER = "x-veta-failed-at"
EXCHANGE = Exchange("veta.dead-letters", type="fanout", durable=True)
QUEUE = Queue("veta.dead-letters", exchange=EXCHANGE, durable=True)


def _connection(config: dict[str, Any]) -> Connection:
    options = dict(config.get("TRANSPORT_OPTIONS") or {})
    options["confirm_publish"] = True
    return Connection(config["AMQP_URI"], transport_options=options)


def _republish(config: dict[str, Any], message: Any, headers: dict[str, Any],
               exchange: Exchange | str, routing_key: str, declare: list[Any]) -> None:
    with _connection(config) as connection:
        producer = connection.Producer()
        producer.publish(message.body, exchange=exchange, routing_key=routing_key,
                         headers=headers, content_type=message.content_type,
                         content_encoding=message.content_encoding, delivery_mode=2,
                         message_id=headers.get("x-veta-letter-id"), declare=declare,
                         retry=True, retry_policy={"max_retries": 3})


def retry(config: dict[str, Any], message: Any, queue: str, attempts: int) -> None:
    """Put a failed message at the back of its own queue (only that handler sees it again)."""
    headers = {**(message.headers or {}), ATTEMPTS_HEADER: attempts}
    _republish(config, message, headers, "", queue, [])


def bury(config: dict[str, Any], message: Any, queue: str, attempts: int, error: str) -> None:
    headers = {**(message.headers or {}), ATTEMPTS_HEADER: attempts, ORIGIN_HEADER: queue,
               ERROR_HEADER: error[:2000], FAILED_AT_HEADER: datetime.now(UTC).isoformat(),
               "x-veta-letter-id": str(uuid.uuid4())}
    _republish(config, message, headers, EXCHANGE, queue, [QUEUE])


def _describe(message: Any) -> dict[str, Any]:
    headers = message.headers or {}
    return {"id": headers.get("x-veta-letter-id"), "queue": headers.get(ORIGIN_HEADER),
            "attempts": headers.get(ATTEMPTS_HEADER), "error": headers.get(ERROR_HEADER),
            "failed_at": headers.get(FAILED_AT_HEADER), "body": message.payload,
            "headers": {k: v for k, v in headers.items() if not k.startswith("x-veta-")}}


@contextmanager
def _held(config: dict[str, Any]) -> Iterator[list[Any]]:
    """Every dead letter, taken unacknowledged: whatever is not acked returns on close."""
    with _connection(config) as connection:
        channel = connection.channel()
        queue = QUEUE(channel)
        queue.declare()
        held = []
        while (message := queue.get(no_ack=False)) is not None:
            held.append(message)
        try:
            yield held
        finally:
            channel.close()


def list_letters(config: dict[str, Any]) -> list[dict[str, Any]]:
    with _held(config) as held:
        return [_describe(message) for message in held]


def _find(held: list[Any], letter_id: str) -> Any:
    for message in held:
        if (message.headers or {}).get("x-veta-letter-id") == letter_id:
            return message
    raise KeyError(letter_id)


def replay(config: dict[str, Any], letter_id: str) -> dict[str, Any]:
    """Send a dead letter back to the queue it failed on, with a fresh attempt count."""
    with _held(config) as held:
        message = _find(held, letter_id)
        described = _describe(message)
        headers = {k: v for k, v in (message.headers or {}).items()
                   if not k.startswith("x-veta-")}
        _republish(config, message, headers, "", described["queue"], [])
        message.ack()
        return described


def discard(config: dict[str, Any], letter_id: str) -> dict[str, Any]:
    with _held(config) as held:
        message = _find(held, letter_id)
        message.ack()
        return _describe(message)
