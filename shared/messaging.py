"""How services meet RabbitMQ: the Database dependency with its outbox relay, and consumer helpers.

The relay publishes each committed outbox row to the service's nameko event exchange with
publisher confirms and persistent delivery, then marks it sent. It is woken right after a
commit and also sweeps on a timer, so rows left by a crash are published after a restart.
Publishing is at least once; consumers make it exactly-once in effect with `first_time`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

import eventlet
from amqp.exceptions import ConnectionError as AMQPConnectionError
from amqp.exceptions import RecoverableConnectionError
from kombu import Connection, Producer
from kombu.exceptions import OperationalError as KombuOperationalError
from nameko.amqp.publish import Publisher
from nameko.constants import (
    AMQP_SSL_CONFIG_KEY,
    AMQP_URI_CONFIG_KEY,
    DEFAULT_SERIALIZER,
    LOGIN_METHOD_CONFIG_KEY,
    NON_PERSISTENT,
    SERIALIZER_CONFIG_KEY,
    TRANSPORT_OPTIONS_CONFIG_KEY,
)
from nameko.containers import WorkerContext
from nameko.events import EventHandler
from nameko.exceptions import deserialize_to_instance
from nameko.extensions import DependencyProvider
from nameko.rpc import ReplyListener, Responder, Rpc, RpcConsumer, get_rpc_exchange
from nameko.rpc import RpcProxy as NamekoRpcProxy
from nameko.standalone.events import get_event_exchange
from sqlalchemy import Engine, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from shared import dead_letters
from shared.errors import ALL_ERRORS, Unavailable
from shared.metrics import DEAD_LETTERED, EVENTS_PUBLISHED
from shared.persistence import MessagingTables, ServiceDatabase, make_engine

log = logging.getLogger(__name__)

for _error in ALL_ERRORS:
    deserialize_to_instance(_error)

BROKER_GONE = (OSError, AMQPConnectionError, RecoverableConnectionError,
               KombuOperationalError)
DATABASES_CONFIG_KEY = "DATABASES"
OUTBOX_CONFIG_KEY = "OUTBOX"
DEAD_LETTER_CONFIG_KEY = "DEAD_LETTER"


class RetryingEventHandler(EventHandler):
    """nameko's event handler, with bounded retries and then a dead-letter queue.

    nameko either acks a failed message (losing the fact) or requeues it forever (a poison
    message spins). Instead a failed event goes back to the end of its own queue with an
    attempt count, and after `max_attempts` it is moved to the dead-letter queue, where staff
    can inspect and replay it (`veta dlq`). If the broker refuses the re-publish, the original
    is requeued rather than acknowledged, so nothing is lost either way.
    """

    def handle_message_processed(self, message: Any, result: Any = None,
                                 exc_info: Any = None) -> None:
        if exc_info is None:
            self._acknowledge(message)
            return
        settings = self.container.config.get(DEAD_LETTER_CONFIG_KEY) or {}
        attempts = int((message.headers or {}).get(dead_letters.ATTEMPTS_HEADER, 0)) + 1
        try:
            if attempts < int(settings.get("max_attempts", 5)):
                eventlet.sleep(min(0.05 * 2 ** attempts, 2.0))
                dead_letters.retry(self.container.config, message, self.queue.name, attempts)
            else:
                dead_letters.bury(self.container.config, message, self.queue.name, attempts,
                                  error=repr(exc_info[1]))
                DEAD_LETTERED.labels(service=self.container.service_name,
                                     queue=self.queue.name).inc()
        except Exception:
            log.exception("could not re-publish a failed message from %s; requeueing it",
                          self.queue.name)
            with suppress(*BROKER_GONE):  # gone with the connection: redelivered anyway
                self.queue_consumer.requeue_message(message)
            return
        self._acknowledge(message)

    def _acknowledge(self, message: Any) -> None:
        """Ack, surviving a broker that has just gone away: the error would otherwise kill
        the container. The unacknowledged message is delivered again once the broker is
        back, and `first_time` makes that second delivery change nothing."""
        try:
            self.queue_consumer.ack_message(message)
        except BROKER_GONE:
            log.warning("could not acknowledge an event on %s: the broker is unreachable; "
                        "it will be delivered again", self.queue.name)


class TransientPublisher(Publisher):
    """RPC requests and replies are not written to the broker's disk: a caller waits seconds
    for its answer, not a broker restart, and gives up with UNAVAILABLE; a command it gave
    up on should not run after the restart (its idempotency key covers the caller asking
    again). Events, which must survive a restart, stay persistent (`OutboxRelay`)."""

    delivery_mode = NON_PERSISTENT


class TransientResponder(Responder):
    publisher_cls = TransientPublisher


class AnsweringRpcConsumer(RpcConsumer):
    """nameko's RPC consumer, surviving a broker that goes away while it answers.

    nameko replies and acks from the worker's completion callback; if the broker is gone
    then, the error escapes into the container, which dies and takes the service with it.
    The message was never acked, so a broker that kept it gives it to a consumer again
    (one that restarted has dropped it: calls are transient); the caller has long since
    given up with UNAVAILABLE. Staying up to reconnect is better.

    Replies are transient too (`TransientResponder`), and a database connection lost under
    the call is answered UNAVAILABLE rather than as an unexpected error.
    """

    def handle_result(self, message: Any, result: Any, exc_info: Any) -> Any:
        if exc_info is not None and _lost_database(exc_info[1]):
            # A moment's trouble, not a fault: the transaction was rolled back (unless the
            # connection died during COMMIT itself; requests where a repeat would matter
            # carry idempotency keys), so the caller should simply ask again.
            exc_info = (Unavailable, Unavailable(
                "the service lost its database connection; try again"), exc_info[2])
        config = self.container.config
        responder = TransientResponder(
            config[AMQP_URI_CONFIG_KEY], get_rpc_exchange(config),
            config.get(SERIALIZER_CONFIG_KEY, DEFAULT_SERIALIZER), message,
            ssl=config.get(AMQP_SSL_CONFIG_KEY),
            login_method=config.get(LOGIN_METHOD_CONFIG_KEY))
        try:
            result, exc_info = responder.send_response(result, exc_info)
            self.queue_consumer.ack_message(message)
            return result, exc_info
        except BROKER_GONE:
            log.warning("could not answer an RPC call: the broker is unreachable; the call "
                        "is redelivered if the broker kept it", exc_info=True)
            return result, exc_info


def _lost_database(error: BaseException) -> bool:
    return isinstance(error, DBAPIError) and bool(error.connection_invalidated)


class AnsweringRpc(Rpc):
    rpc_consumer = AnsweringRpcConsumer()


rpc = AnsweringRpc.decorator
"""Every Veta RPC entrypoint: use this, never nameko's own, so that all of a service's
methods share the one consumer on its `rpc-<service>` queue."""


class SurvivingReplyListener(ReplyListener):
    """nameko's RPC reply listener, which acks each reply before handing it over.

    An ack on a connection the broker has just dropped raises in the listener's thread and
    kills the whole container (the gateway, in practice). The reply is still delivered to
    its waiting caller; the lost ack only means the broker may offer it again, and a reply
    whose caller has gone is ignored by correlation id.
    """

    def handle_message(self, body: Any, message: Any) -> None:
        try:
            self.queue_consumer.ack_message(message)
        except BROKER_GONE:
            log.warning("could not ack an RPC reply: the broker is unreachable")
        correlation_id = message.properties.get("correlation_id")
        waiting = self._reply_events.pop(correlation_id, None)
        if waiting is not None:
            waiting.send(body)


class RpcProxy(NamekoRpcProxy):
    """nameko's RpcProxy with a reply listener that survives the broker going away, sending
    its calls as transient messages (`TransientPublisher`)."""

    rpc_reply_listener = SurvivingReplyListener()

    def __init__(self, target_service: str, **options: Any) -> None:
        options.setdefault("delivery_mode", NON_PERSISTENT)
        super().__init__(target_service, **options)


def consumes(source: str, event_type: str) -> Any:
    """A durable, reliable event handler with bounded retries and a dead-letter queue."""
    return RetryingEventHandler.decorator(source, event_type, reliable_delivery=True)


class OutboxRelay:
    """Publishes a service's committed outbox rows, in order, with confirms."""

    def __init__(self, engine: Engine, tables: MessagingTables, source: str,
                 config: dict[str, Any], batch_size: int = 200,
                 sweep_seconds: float = 1.0, confirm_seconds: float = 10.0) -> None:
        self.engine = engine
        self.sessions = sessionmaker(engine)
        self.outbox = tables.outbox
        self.source = source
        self.exchange = get_event_exchange(source, config)
        self.uri = config[AMQP_URI_CONFIG_KEY]
        self.transport_options = dict(config.get(TRANSPORT_OPTIONS_CONFIG_KEY) or {})
        self.connection = Connection(self.uri, transport_options=self.transport_options)
        self.channel: Any = None
        self.producer: Producer | None = None
        self.batch_size = batch_size
        self.sweep_seconds = sweep_seconds
        self.confirm_seconds = confirm_seconds
        self.can_skip_locked = engine.dialect.name == "postgresql"
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._unconfirmed: set[int] = set()
        self._refused = False
        self._tag = 0
        self.published = 0

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()

    def run(self) -> None:
        while not self._stopped.is_set():
            self._wake.wait(self.sweep_seconds)
            self._wake.clear()
            try:
                while not self._stopped.is_set() and self.publish_pending() == self.batch_size:
                    pass
            except Exception:
                log.exception("outbox relay for %s failed; retrying on the next sweep",
                              self.source)
        self.connection.release()

    def publish_pending(self) -> int:
        """Publish one batch of unsent events; returns how many went out."""
        with self.sessions() as session, session.begin():
            query = (select(self.outbox.c.id, self.outbox.c.event_type, self.outbox.c.payload)
                     .where(self.outbox.c.sent_at.is_(None))
                     .order_by(self.outbox.c.id).limit(self.batch_size))
            if self.can_skip_locked:
                # Replicas share the outbox: each claims rows the others have not locked,
                # and holds them until they are confirmed by the broker and marked sent.
                query = query.with_for_update(skip_locked=True)
                rows = session.execute(query).all()
                self._publish(rows)
                self._mark_sent(session, [row.id for row in rows])
                return len(rows)
            rows = session.execute(query).all()
        # SQLite runs one relay per process: publish outside the transaction so that the
        # write lock is never held across network I/O.
        self._publish(rows)
        with self.sessions() as session, session.begin():
            self._mark_sent(session, [row.id for row in rows])
        return len(rows)

    def _publish(self, rows: Sequence[Any]) -> None:
        """Publish a batch, then wait once for the broker to confirm all of it.

        A persistent message is confirmed when the broker has it on disk; waiting for each
        in turn would cost a disk sync per event. Any failure leaves the whole batch unsent
        (consumers skip the copies they already applied) and a fresh connection is made.
        """
        if not rows:
            return
        try:
            producer = self._producer()
            for row in rows:
                headers = {}
                if row.payload.get("correlation_id"):
                    # nameko turns `nameko.*` headers into the consumer's context data.
                    headers["nameko.correlation_id"] = row.payload["correlation_id"]
                producer.publish(row.payload, routing_key=row.event_type, delivery_mode=2,
                                 headers=headers)
                if self._confirms:
                    self._tag += 1
                    self._unconfirmed.add(self._tag)
            while self._unconfirmed:
                self.connection.drain_events(timeout=self.confirm_seconds)
            if self._refused:
                raise RuntimeError(f"the broker refused events from {self.source}'s outbox")
        except BaseException:
            self._reconnect()
            raise
        for row in rows:
            EVENTS_PUBLISHED.labels(service=self.source, type=row.event_type).inc()
        self.published += len(rows)

    @property
    def _confirms(self) -> bool:
        # The in-process memory:// transport delivers as it publishes: nothing to confirm.
        return hasattr(self.channel, "confirm_select")

    def _producer(self) -> Producer:
        """A producer on a channel in confirm mode, opened (again) if need be."""
        if self.producer is None:
            self.connection.ensure_connection(max_retries=3, interval_start=0.2,
                                              interval_step=0.5)
            channel = self.connection.channel()
            self.exchange(channel).declare()
            if hasattr(channel, "confirm_select"):
                channel.confirm_select()
                channel.events["basic_ack"].add(self._on_ack)
                channel.events["basic_nack"].add(self._on_nack)
            self.channel, self._tag = channel, 0
            self.producer = Producer(channel, exchange=self.exchange, serializer="json",
                                     auto_declare=False)
        return self.producer

    def _on_ack(self, tag: int, multiple: bool) -> None:
        if multiple:
            self._unconfirmed = {t for t in self._unconfirmed if t > tag}
        else:
            self._unconfirmed.discard(tag)

    def _on_nack(self, tag: int, multiple: bool) -> None:
        self._refused = True
        self._on_ack(tag, multiple)

    def _reconnect(self) -> None:
        with suppress(Exception):
            self.connection.release()
        self.connection = Connection(self.uri, transport_options=self.transport_options)
        self.channel, self.producer = None, None
        self._unconfirmed, self._refused = set(), False

    def _mark_sent(self, session: Session, ids: list[int]) -> None:
        if ids:
            session.execute(update(self.outbox).where(self.outbox.c.id.in_(ids))
                            .values(sent_at=datetime.now(UTC)))


class Database(DependencyProvider):
    """Gives a service its own database, as units of work, and runs its outbox relay."""

    def __init__(self, tables: MessagingTables) -> None:
        self.tables = tables

    def setup(self) -> None:
        name = self.container.service_name
        urls = self.container.config.get(DATABASES_CONFIG_KEY) or {}
        if name not in urls:
            raise RuntimeError(f"no database configured for {name} "
                               f"(set VETA_{name.upper()}_DATABASE_URL)")
        # One connection for each worker that can run at once, the outbox relay and a timer.
        self.engine = make_engine(urls[name], connections=self.container.max_workers + 2)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        outbox_config = self.container.config.get(OUTBOX_CONFIG_KEY) or {}
        self.relay = OutboxRelay(self.engine, self.tables, name, self.container.config,
                                 sweep_seconds=float(outbox_config.get("sweep_seconds", 1.0)))

    def start(self) -> None:
        self.container.spawn_managed_thread(self.relay.run,
                                            identifier=f"{self.relay.source}.outbox")

    def stop(self) -> None:
        self.relay.stop()
        self.engine.dispose()

    def kill(self) -> None:
        self.relay.stop()

    def get_dependency(self, worker_ctx: WorkerContext) -> ServiceDatabase:
        return ServiceDatabase(self.sessions, self.tables,
                               correlation_id=worker_ctx.context_data.get("correlation_id"),
                               after_commit=self.relay.wake)
