"""The outbox relay against the real RabbitMQ and PostgreSQL: a backlog goes out in order, in
batches confirmed by the broker, and a connection lost mid-way loses and marks nothing."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from kombu import Connection, Consumer, Queue
from nameko.standalone.events import get_event_exchange
from sqlalchemy import Engine, MetaData, func, insert, select

from shared.messaging import OutboxRelay
from shared.persistence import MessagingTables, make_engine, messaging_tables
from tests.conftest import POSTGRES, _admin_connection

SOURCE = "relay_probe"


@pytest.fixture
def outbox() -> Iterator[tuple[Engine, MessagingTables]]:
    """An outbox in a database of its own, so no service's relay ever sees these rows."""
    name = f"veta_test_relay_{uuid.uuid4().hex[:8]}"
    admin = _admin_connection()
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg2://", 1)
    engine = make_engine(f"{base}/{name}")
    metadata = MetaData()
    tables = messaging_tables(metadata)
    metadata.create_all(engine)
    yield engine, tables
    engine.dispose()
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


def write(engine: Engine, tables: MessagingTables, count: int, first: int = 0) -> None:
    now = datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(insert(tables.outbox), [
            {"event_id": str(uuid.uuid4()), "event_type": "probed", "created_at": now,
             "attempts": 0, "payload": {"n": n, "correlation_id": f"probe-{n}"}}
            for n in range(first, first + count)])


def unsent(engine: Engine, tables: MessagingTables) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(tables.outbox)
                                      .where(tables.outbox.c.sent_at.is_(None))).scalar_one())


class Received:
    """A queue bound to the probe's event exchange, and what arrived on it."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.connection = Connection(config["AMQP_URI"])
        queue = Queue(f"probe-{uuid.uuid4().hex}", exchange=get_event_exchange(SOURCE, config),
                      routing_key="probed", exclusive=True)
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, Any]] = []
        self.consumer = Consumer(self.connection, [queue], callbacks=[self._on], accept=["json"])
        self.consumer.consume()

    def _on(self, body: dict[str, Any], message: Any) -> None:
        self.bodies.append(body)
        self.headers.append(message.headers)
        message.ack()

    def until(self, count: int) -> list[int]:
        while len(self.bodies) < count:
            self.connection.drain_events(timeout=10)
        return [body["n"] for body in self.bodies]

    def close(self) -> None:
        self.connection.release()


def test_a_backlog_goes_out_in_order_in_confirmed_batches_and_is_marked_sent(
        rabbit_config: dict[str, Any], outbox: tuple[Engine, MessagingTables]) -> None:
    engine, tables = outbox
    received = Received(rabbit_config)
    write(engine, tables, 450)
    relay = OutboxRelay(engine, tables, SOURCE, rabbit_config, batch_size=200)

    batches = [relay.publish_pending() for _ in range(4)]

    assert batches == [200, 200, 50, 0]
    assert unsent(engine, tables) == 0 and relay.published == 450
    assert received.until(450) == list(range(450))
    # The correlation id travels as nameko's context header, to the consumer's logs.
    assert received.headers[7]["nameko.correlation_id"] == "probe-7"
    relay.connection.release()
    received.close()


def test_a_connection_lost_mid_way_marks_nothing_and_the_next_sweep_sends_it(
        rabbit_config: dict[str, Any], outbox: tuple[Engine, MessagingTables]) -> None:
    engine, tables = outbox
    received = Received(rabbit_config)
    relay = OutboxRelay(engine, tables, SOURCE, rabbit_config, batch_size=200)
    write(engine, tables, 3)
    assert relay.publish_pending() == 3
    write(engine, tables, 5, first=3)

    # The broker's connection drops under the relay (a restart, a network cut).
    relay.connection.connection.sock.shutdown(socket.SHUT_RDWR)
    with pytest.raises(OSError):
        relay.publish_pending()
    assert unsent(engine, tables) == 5

    assert relay.publish_pending() == 5
    assert unsent(engine, tables) == 0
    assert received.until(8) == list(range(8))
    relay.connection.release()
    received.close()
