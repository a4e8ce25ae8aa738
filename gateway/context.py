"""What one GraphQL request carries: the caller, timed RPC to the services, per-request loaders.

Loaders make nested fields cheap: a page of N lots asks for its producers in one RPC call,
because each lot only announces the producer it will need and the first lookup fetches all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import eventlet
from amqp.exceptions import ConnectionError as AMQPConnectionError
from kombu.exceptions import OperationalError as KombuOperationalError
from nameko.exceptions import UnknownService

from gateway.errors import Refused, as_graphql_error, user_errors
from shared.caller import Caller, Role
from shared.errors import VetaError

PRODUCER_LOTS = 20
"""How many of each producer's newest lots the producer-lots loader fetches."""


class Loader:
    """Fetches items by id in batches, caching them for the rest of the request."""

    def __init__(self, fetch_many: Callable[[list[str]], list[dict[str, Any]]]) -> None:
        self.fetch_many = fetch_many
        self.cache: dict[str, dict[str, Any] | None] = {}
        self.wanted: set[str] = set()

    def expect(self, ids: Iterable[str | None]) -> None:
        self.wanted.update(i for i in ids if i and i not in self.cache)

    def get(self, item_id: str | None) -> dict[str, Any] | None:
        if not item_id:
            return None
        if item_id not in self.cache:
            batch = sorted(self.wanted | {item_id})
            self.wanted.clear()
            found = {item["id"]: item for item in self.fetch_many(batch)}
            for key in batch:
                self.cache[key] = found.get(key)
        return self.cache[item_id]

    def prime(self, items: Iterable[dict[str, Any]]) -> None:
        """Cache items already fetched another way (a page of producers, say)."""
        for item in items:
            self.cache[item["id"]] = item
            self.wanted.discard(item["id"])


class RequestContext:
    def __init__(self, caller: Caller | None, proxies: dict[str, Any],
                 timeout: float) -> None:
        self.caller = caller
        self.proxies = proxies
        self.timeout = timeout
        self.rpc_calls = 0
        self.producers = Loader(lambda ids: self.call("certification", "get_producers", ids))
        self.listings = Loader(lambda ids: self.call("listings", "get_listings", ids))
        # A producer's newest lots, for a whole page of producers in one call.
        self.producer_lots = Loader(
            lambda ids: self.call("listings", "lots_of_producers", ids, PRODUCER_LOTS))
        self.orders = Loader(lambda ids: self.call("orders", "get_orders", ids))
        self.commitments = Loader(lambda ids: self.call("orders", "get_commitments", ids))
        self.obligations = Loader(lambda ids: self.call("payouts", "get_obligations", ids))

    def call(self, service: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call a service, giving up with UNAVAILABLE rather than waiting forever."""
        self.rpc_calls += 1
        try:
            # The timeout covers sending too: with the broker down, publishing alone retries
            # for seconds before it gives up.
            with eventlet.Timeout(self.timeout):
                reply = getattr(self.proxies[service], method).call_async(*args, **kwargs)
                return reply.result()
        except eventlet.Timeout:
            raise Refused("UNAVAILABLE", f"the {service} service did not answer in time") \
                from None
        except UnknownService:
            raise Refused("UNAVAILABLE", f"the {service} service is not running") from None
        except (OSError, KombuOperationalError, AMQPConnectionError):
            # The broker itself is unreachable (stopped, restarting, network gone).
            raise Refused("UNAVAILABLE", "the message broker is unreachable; try again") \
                from None

    def require(self, *roles: Role) -> Caller:
        """The caller, if it holds one of `roles` (administrators hold them all)."""
        if self.caller is None:
            raise Refused("UNAUTHENTICATED", "sign in: send an Authorization: Bearer token")
        if roles and self.caller.role not in roles and self.caller.role is not Role.ADMIN:
            raise Refused("FORBIDDEN", f"a {self.caller.role} may not do this")
        return self.caller


    def read(self, action: Callable[[], Any], *roles: Role) -> Any:
        """Run a query resolver for a caller holding one of `roles` (any caller if none)."""
        try:
            self.require(*roles)
            return action()
        except (VetaError, Refused) as exc:
            raise as_graphql_error(exc) from None

    def mutate(self, payload_cls: Any, field: str, action: Callable[[], Any],
               *roles: Role) -> Any:
        """Run a mutation; a refusal becomes typed errors in its payload, never a 500."""
        try:
            self.require(*roles)
            result = action()
        except (VetaError, Refused) as exc:
            return payload_cls(**{field: None, "errors": user_errors(exc)})
        return payload_cls(**{field: result, "errors": []})


def context(info: Any) -> RequestContext:
    ctx: RequestContext = info.context
    return ctx
