"""Running Veta on kombu's in-process `memory://` broker, for the embedded default.

nameko 2.14.1's RPC responder reads the request's `content_type` from the AMQP message
properties, where py-amqp puts it. kombu's virtual transports (memory://) keep it on the
message itself instead, so every RPC reply would fail with a KeyError. The shim copies it
across before the responder looks. Events on memory:// are polled, so the config also sets
a short polling interval.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import memory
from nameko.rpc import Responder

MEMORY_TRANSPORT_OPTIONS = {"polling_interval": 0.01}

_original_send_response = Responder.send_response


def _send_response(self: Responder, result: Any, exc_info: Any) -> Any:
    properties = self.message.properties
    if "content_type" not in properties:
        properties["content_type"] = self.message.content_type
    return _original_send_response(self, result, exc_info)


def use_memory_transport() -> None:
    """Make nameko's RPC work over memory://. Idempotent; harmless over real AMQP."""
    Responder.send_response = _send_response
    # nameko's standalone RPC proxy ignores TRANSPORT_OPTIONS, so its replies would wait
    # out kombu's default one-second poll: make the short interval the transport's default.
    memory.Transport.polling_interval = MEMORY_TRANSPORT_OPTIONS["polling_interval"]
