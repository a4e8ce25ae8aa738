"""shared/embedded.py: nameko RPC and events over kombu's in-process memory:// broker."""

from collections.abc import Iterator
from typing import Any, ClassVar

import kombu.transport.memory
import pytest
from kombu import Exchange
from nameko.events import event_handler
from nameko.exceptions import RemoteError, RpcTimeout
from nameko.rpc import Responder, rpc
from nameko.standalone.events import event_dispatcher
from nameko.standalone.rpc import ClusterRpcProxy, ServiceRpcProxy
from nameko.testing.services import entrypoint_waiter

import shared.embedded
from shared.embedded import MEMORY_TRANSPORT_OPTIONS, use_memory_transport

CONFIG = {"AMQP_URI": "memory://", "TRANSPORT_OPTIONS": {"polling_interval": 0.01}}


class Echo:
    name = "embedded_echo"
    received: ClassVar[list[dict[str, Any]]] = []

    @rpc
    def echo(self, value: Any) -> dict[str, Any]:
        return {"echo": value}

    @rpc
    def refuse(self) -> None:
        raise ValueError("refused on purpose")

    @event_handler("embedded_source", "thing_happened")
    def on_thing_happened(self, payload: dict[str, Any]) -> str:
        Echo.received.append(payload)
        return f"handled {payload['thing_id']}"


@pytest.fixture
def memory_transport() -> Iterator[None]:
    """Apply the shim for the test, and leave Responder as it was found afterwards."""
    before = Responder.send_response
    use_memory_transport()
    yield
    Responder.send_response = before


@pytest.fixture
def fast_standalone_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    """nameko's standalone RPC proxy opens its reply connection without TRANSPORT_OPTIONS,
    so over memory:// it would poll for each reply at kombu's default of once a second."""
    monkeypatch.setattr(kombu.transport.memory.Transport, "polling_interval",
                        MEMORY_TRANSPORT_OPTIONS["polling_interval"])


@pytest.fixture
def echo(memory_transport: None, fast_standalone_polling: None, container_factory: Any) -> Any:
    Echo.received.clear()
    container = container_factory(Echo, CONFIG)
    container.start()
    return container


# --- the shim at work -----------------------------------------------------------------------

def test_use_memory_transport_installs_the_shim_and_is_idempotent(
        memory_transport: None) -> None:
    assert Responder.send_response is shared.embedded._send_response
    use_memory_transport()
    assert Responder.send_response is shared.embedded._send_response
    assert shared.embedded._original_send_response is not shared.embedded._send_response


def test_the_embedded_polling_interval_is_short() -> None:
    assert MEMORY_TRANSPORT_OPTIONS == {"polling_interval": 0.01}


# Each container costs about a second to stop on memory:// (kombu's consumer loop drains
# with a one-second safety interval), so each test below makes several checks on one container.

def test_a_service_answers_rpc_over_memory(echo: Any) -> None:
    with ServiceRpcProxy("embedded_echo", CONFIG) as proxy:
        assert proxy.echo({"fine_weight": "915.000"}) == {"echo": {"fine_weight": "915.000"}}
        assert proxy.echo([1, 2, 3]) == {"echo": [1, 2, 3]}
        with pytest.raises(RemoteError, match="refused on purpose"):
            proxy.refuse()
    with ClusterRpcProxy(CONFIG) as cluster:
        assert cluster.embedded_echo.echo("veta") == {"echo": "veta"}


def test_a_service_receives_a_dispatched_event_over_memory(echo: Any) -> None:
    dispatch = event_dispatcher(CONFIG)
    with entrypoint_waiter(echo, "on_thing_happened", timeout=5) as result:
        dispatch("embedded_source", "thing_happened", {"thing_id": "t-1"})
    assert result.get() == "handled t-1"
    # An event of another type is not delivered: only t-2 follows t-1.
    dispatch("embedded_source", "something_else_happened", {"thing_id": "ignored"})
    with entrypoint_waiter(echo, "on_thing_happened", timeout=5) as result:
        dispatch("embedded_source", "thing_happened", {"thing_id": "t-2"})
    assert result.get() == "handled t-2"
    assert Echo.received == [{"thing_id": "t-1"}, {"thing_id": "t-2"}]


# --- why the shim exists --------------------------------------------------------------------

def test_without_the_shim_an_rpc_over_memory_gets_no_reply_and_kills_the_service(
        echo: Any) -> None:
    Responder.send_response = shared.embedded._original_send_response
    try:
        with ServiceRpcProxy("embedded_echo", CONFIG, timeout=0.5) as proxy, \
                pytest.raises(RpcTimeout):
            proxy.echo("lost")
        # The responder's KeyError is unexpected in a worker, so nameko kills the container.
        with pytest.raises(KeyError, match="content_type"):
            echo.wait()
    finally:
        use_memory_transport()
    assert Responder.send_response is shared.embedded._send_response


class FakeMessage:
    """What kombu's memory:// transport hands the responder: content_type not in properties."""

    def __init__(self) -> None:
        self.properties: dict[str, Any] = {"reply_to": "reply-queue-1",
                                           "correlation_id": "corr-1"}
        self.content_type = "application/json"


class RecordingPublisher:
    sent: ClassVar[list[tuple[Any, dict[str, Any]]]] = []

    def __init__(self, amqp_uri: str, **options: Any) -> None:
        self.amqp_uri = amqp_uri

    def publish(self, payload: Any, **kwargs: Any) -> None:
        RecordingPublisher.sent.append((payload, kwargs))


def responder(message: FakeMessage) -> Responder:
    instance = Responder("memory://", Exchange("nameko-rpc"), "json", message)
    instance.publisher_cls = RecordingPublisher  # this responder only
    return instance


def test_without_the_shim_the_responder_fails_on_a_memory_message(
        memory_transport: None) -> None:
    RecordingPublisher.sent.clear()
    Responder.send_response = shared.embedded._original_send_response
    try:
        with pytest.raises(KeyError, match="content_type"):
            responder(FakeMessage()).send_response({"ok": True}, None)
    finally:
        use_memory_transport()
    assert RecordingPublisher.sent == []


def test_with_the_shim_the_responder_replies_to_a_memory_message(
        memory_transport: None) -> None:
    RecordingPublisher.sent.clear()
    message = FakeMessage()
    result, exc_info = responder(message).send_response({"ok": True}, None)
    assert (result, exc_info) == ({"ok": True}, None)
    assert message.properties["content_type"] == "application/json"
    [(payload, options)] = RecordingPublisher.sent
    assert payload == {"result": {"ok": True}, "error": None}
    assert options["serializer"] == "json"
    assert options["routing_key"] == "reply-queue-1"
    assert options["correlation_id"] == "corr-1"


def test_the_shim_keeps_a_content_type_already_in_the_properties(
        memory_transport: None) -> None:
    RecordingPublisher.sent.clear()
    message = FakeMessage()
    message.properties["content_type"] = "application/json"
    message.content_type = "application/x-something-else"
    responder(message).send_response("fine", None)
    assert message.properties["content_type"] == "application/json"
    assert RecordingPublisher.sent[0][1]["serializer"] == "json"
