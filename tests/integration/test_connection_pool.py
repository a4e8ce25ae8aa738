"""The services' PostgreSQL pool: an idle connection is checked before use; one in steady use
is not, and when it turns out dead, the pool throws away every connection as old as it and the
caller is told UNAVAILABLE (try again), not INTERNAL."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from nameko.standalone.rpc import ServiceRpcProxy
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from shared.errors import Unavailable
from shared.messaging import rpc
from shared.persistence import make_engine
from tests.conftest import _admin_connection


def backend(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


def terminate(*pids: int) -> None:
    admin = _admin_connection()
    with admin.cursor() as cursor:
        for pid in pids:
            cursor.execute("SELECT pg_terminate_backend(%s)", (pid,))
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,))
            while cursor.fetchone()[0]:  # gone once the backend has exited
                cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,))
    admin.close()


def test_a_connection_dropped_while_it_sat_idle_is_replaced_before_use(
        database_urls: dict[str, str]) -> None:
    engine = make_engine(database_urls["orders"], ping_after_idle_seconds=0)
    dropped = backend(engine)
    terminate(dropped)

    assert backend(engine) != dropped  # pinged, found dead, replaced: no error
    engine.dispose()


def test_a_connection_in_steady_use_is_not_pinged_and_one_failure_renews_the_pool(
        database_urls: dict[str, str]) -> None:
    engine = make_engine(database_urls["orders"], ping_after_idle_seconds=3600)
    with engine.connect() as first, engine.connect() as second:
        pids: list[Any] = [first.execute(text("SELECT pg_backend_pid()")).scalar_one(),
                           second.execute(text("SELECT pg_backend_pid()")).scalar_one()]
    terminate(*pids)

    with pytest.raises(DBAPIError) as failure:
        backend(engine)
    assert failure.value.connection_invalidated
    # The other connection is as old as the failure: discarded, not handed out dead.
    assert backend(engine) not in pids
    engine.dispose()


class Reader:
    name = "reader"
    engines: ClassVar[list[Engine]] = []

    @rpc
    def one(self) -> int:
        with self.engines[0].connect() as connection:
            return int(connection.execute(text("SELECT 1")).scalar_one())


def test_a_call_whose_connection_died_is_answered_unavailable_and_the_next_one_works(
        database_urls: dict[str, str], container_factory: Any,
        rabbit_config: dict[str, Any]) -> None:
    engine = make_engine(database_urls["orders"], ping_after_idle_seconds=3600)
    terminate(backend(engine))
    Reader.engines[:] = [engine]
    container_factory(Reader, rabbit_config).start()

    with ServiceRpcProxy("reader", rabbit_config) as reader:
        with pytest.raises(Unavailable) as refused:
            reader.one()
        assert refused.value.code == "UNAVAILABLE"
        assert reader.one() == 1
    engine.dispose()
