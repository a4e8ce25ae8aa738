"""Each service's database: engines, the unit of work, and the outbox and applied-events tables.

A unit of work is one transaction. Events a service raises are written to its outbox inside
that transaction, and events it consumes are recorded as applied inside it, so a state change,
the facts it announces and the messages it has acted on are committed together or not at all.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    exc,
    insert,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from shared.events import Event, utcnow

log = logging.getLogger(__name__)

# SQLite only autoincrements INTEGER PRIMARY KEY columns; PostgreSQL gets a BIGINT identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")


@dataclass(frozen=True)
class MessagingTables:
    outbox: Table
    applied_events: Table


def messaging_tables(metadata: MetaData) -> MessagingTables:
    """Add the outbox and applied-events tables to a service's metadata."""
    outbox = Table(
        "outbox", metadata,
        Column("id", BigId, primary_key=True, autoincrement=True),
        Column("event_id", String(36), nullable=False, unique=True),
        Column("event_type", String(80), nullable=False),
        Column("payload", JSON, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("sent_at", DateTime(timezone=True)),
        Column("attempts", Integer, nullable=False, default=0),
    )
    Index("ix_outbox_unsent", outbox.c.id, postgresql_where=outbox.c.sent_at.is_(None),
          sqlite_where=outbox.c.sent_at.is_(None))
    applied = Table(
        "applied_events", metadata,
        Column("event_id", String(36), primary_key=True),
        Column("event_type", String(80), nullable=False),
        Column("applied_at", DateTime(timezone=True), nullable=False),
    )
    return MessagingTables(outbox=outbox, applied_events=applied)


def make_engine(url: str, connections: int = 5, ping_after_idle_seconds: float = 1.0
                ) -> Engine:
    """An engine tuned for the dialect: PostgreSQL pooled (`connections` kept open), SQLite
    serialised per write."""
    if make_url(url).get_backend_name() == "sqlite":
        # One short-lived connection per unit of work: green threads never share a SQLite
        # connection, and BEGIN IMMEDIATE takes the write lock up front, so two writers
        # queue instead of deadlocking on a read-to-write lock upgrade.
        engine = create_engine(url, poolclass=NullPool, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(connection: Any) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    # The pool keeps open as many connections as the service can use at once: a smaller one
    # closes each connection beyond it when it is given back and opens another on the next
    # burst, and PostgreSQL forks a backend for each (the orders bench saw listings open one
    # every ten transactions). Last in, first out, so that the connections a steady load
    # needs stay warm and the rest sit idle.
    pool_size = int(os.environ.get("VETA_DB_POOL_SIZE", str(connections)))
    engine = create_engine(url, pool_size=pool_size, max_overflow=5, pool_use_lifo=True,
                           pool_recycle=1800)

    # A connection is checked with a round trip only when it has sat idle for a while (the
    # server may have dropped it meanwhile, or restarted), not on every checkout: pinging
    # each time cost an eighth of all the CPU an order took in the orders bench. One
    # dropped within the last `ping_after_idle_seconds` fails its first statement instead,
    # like a connection cut mid-transaction: the event is retried, the RPC answered with an
    # error, and the pool throws away every connection older than the failure.
    @event.listens_for(engine, "checkin")
    def _idle_from(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.pop("idle_since", None)
        if idle_since is None or time.monotonic() - idle_since < ping_after_idle_seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            if engine.dialect.is_disconnect(error, dbapi_connection, None):
                raise exc.InvalidatePoolError() from error
            raise

    return engine


class UnitOfWork:
    """One transaction in one service's database, collecting the events it raises."""

    def __init__(self, session: Session, tables: MessagingTables,
                 correlation_id: str | None) -> None:
        self.session = session
        self.tables = tables
        self.correlation_id = correlation_id
        self.raised: list[Event] = []

    def raise_event(self, event: Event) -> Event:
        """Record an event in the outbox; it is published only if this transaction commits."""
        if event.correlation_id is None and self.correlation_id is not None:
            event = event.model_copy(update={"correlation_id": self.correlation_id})
        self.session.execute(insert(self.tables.outbox).values(
            event_id=str(event.event_id), event_type=event.type, payload=event.envelope(),
            created_at=event.occurred_at, attempts=0,
        ))
        self.raised.append(event)
        return event

    def raise_events(self, events: list[Event]) -> list[Event]:
        """Record many events in the outbox with one statement (a cascade raises hundreds)."""
        stamped = [e if e.correlation_id is not None or self.correlation_id is None
                   else e.model_copy(update={"correlation_id": self.correlation_id})
                   for e in events]
        if stamped:
            self.session.execute(insert(self.tables.outbox), [
                {"event_id": str(e.event_id), "event_type": e.type, "payload": e.envelope(),
                 "created_at": e.occurred_at, "attempts": 0} for e in stamped])
        self.raised.extend(stamped)
        return stamped

    def publish_again(self, event: Event) -> Event:
        """Queue an event raised earlier to be published once more, under its own event_id.

        Consumers record the event ids they applied, so one that already acted on it skips
        it, and one that never got it (a queue that did not exist yet, a message lost or
        dead-lettered) acts on it now: asking again can never be taken as a second request.
        An outbox row that was cleaned away is written anew.
        """
        outbox = self.tables.outbox
        queued = self.session.execute(
            update(outbox).where(outbox.c.event_id == str(event.event_id))
            .values(sent_at=None, attempts=outbox.c.attempts + 1))
        if queued.rowcount == 0:  # type: ignore[attr-defined]
            return self.raise_event(event)
        self.raised.append(event)
        return event

    def first_time(self, event: Event) -> bool:
        """Record that `event` is being applied; False if it already was (a redelivery).

        One statement: two replicas racing on the same redelivered event both insert its
        id; the second waits for the first's transaction, then inserts nothing and skips
        the event (or, if the first rolled back, applies it itself).
        """
        if insert_if_absent(self.session, self.tables.applied_events, ["event_id"],
                            event_id=str(event.event_id), event_type=event.type,
                            applied_at=utcnow()):
            return True
        log.info("skipping %s %s: already applied", event.type, event.event_id)
        return False


def insert_if_absent(session: Session, table: Any, key: list[str], **values: Any) -> bool:
    """INSERT ... ON CONFLICT (key) DO NOTHING on PostgreSQL or SQLite; True if inserted.

    A concurrent transaction inserting the same key makes this one wait for its outcome
    rather than fail, so it is the way to claim "first" without a unique-violation retry.
    """
    make = postgresql.insert if session.get_bind().dialect.name == "postgresql" \
        else sqlite.insert
    statement = make(table).values(**values).on_conflict_do_nothing(index_elements=key)
    return bool(session.execute(statement).rowcount)  # type: ignore[attr-defined]


class ServiceDatabase:
    """What a service method sees: units of work and read-only sessions on its own database."""

    def __init__(self, sessions: sessionmaker[Session], tables: MessagingTables,
                 correlation_id: str | None = None,
                 after_commit: Callable[[], None] | None = None) -> None:
        self.sessions = sessions
        self.tables = tables
        self.correlation_id = correlation_id
        self.after_commit = after_commit

    @contextmanager
    def unit_of_work(self) -> Iterator[UnitOfWork]:
        with self.sessions() as session, session.begin():
            uow = UnitOfWork(session, self.tables, self.correlation_id)
            yield uow
        if uow.raised and self.after_commit is not None:
            self.after_commit()

    @contextmanager
    def reading(self) -> Iterator[Session]:
        with self.sessions() as session:
            yield session
