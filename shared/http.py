"""HTTP entrypoints whose server address can be set per service.

nameko's web server reads one WEB_SERVER_ADDRESS for every container, and eventlet binds
with SO_REUSEPORT, so two services in one process given the same address silently share
the port and the kernel hands each request to either: half the gateway's requests would
land on the payouts webhook server and get a 404. `WEB_SERVER_ADDRESSES` gives a service
its own address (port 0 for any free one); WEB_SERVER_ADDRESS stays the default.
"""

from __future__ import annotations

from typing import Any

from nameko.constants import WEB_SERVER_CONFIG_KEY
from nameko.web.handlers import HttpRequestHandler
from nameko.web.server import WebServer, parse_address

ADDRESSES_CONFIG_KEY = "WEB_SERVER_ADDRESSES"


class ServiceWebServer(WebServer):
    @property
    def bind_addr(self) -> Any:
        config = self.container.config
        address = (config.get(ADDRESSES_CONFIG_KEY) or {}).get(self.container.service_name)
        return parse_address(address or config.get(WEB_SERVER_CONFIG_KEY, "0.0.0.0:8000"))

    @property
    def port(self) -> int:
        """The port actually bound (useful when the address asked for port 0)."""
        return int(self._sock.getsockname()[1])


class HttpEntrypoint(HttpRequestHandler):
    server = ServiceWebServer()


http = HttpEntrypoint.decorator
