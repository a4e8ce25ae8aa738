"""RPC calls and replies between services are transient messages; events stay persistent."""

from __future__ import annotations

from typing import Any

from kombu import Connection, Consumer, Exchange, Queue
from nameko.standalone.rpc import ServiceRpcProxy

from shared.messaging import RpcProxy, rpc


class Echoer:
    name = "echoer"

    @rpc
    def echo(self, value: str) -> str:
        return value


class Asker:
    name = "asker"
    echoer = RpcProxy("echoer")

    @rpc
    def ask(self, value: str) -> str:
        return str(self.echoer.echo(value))


def test_calls_between_services_and_their_replies_are_not_written_to_the_brokers_disk(
        container_factory: Any, rabbit_config: dict[str, Any]) -> None:
    for service in (Echoer, Asker):
        container_factory(service, rabbit_config).start()
    seen: list[Any] = []
    with Connection(rabbit_config["AMQP_URI"]) as connection:
        # A copy of every message through nameko's RPC exchange.
        spy = Queue("rpc-spy", Exchange("nameko-rpc", type="topic", durable=True),
                    routing_key="#", exclusive=True)
        with Consumer(connection, [spy], callbacks=[lambda _body, m: seen.append(m)],
                      accept=["json"]):
            with ServiceRpcProxy("asker", rabbit_config) as asker:
                assert asker.ask("oro") == "oro"
            call = next(m for m in _drained(connection, seen, 4)
                        if m.delivery_info["routing_key"] == "echoer.echo")
            reply = next(m for m in seen
                         if m.properties.get("correlation_id") ==
                         call.properties["correlation_id"] and m is not call)
    assert call.properties["delivery_mode"] == 1
    assert reply.properties["delivery_mode"] == 1


def _drained(connection: Connection, seen: list[Any], count: int) -> list[Any]:
    while len(seen) < count:
        connection.drain_events(timeout=10)
    return seen
