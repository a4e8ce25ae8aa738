"""The gateway service: GraphQL over HTTP at /graphql, GraphiQL on GET.

It authenticates the bearer token, puts the caller and a correlation id in the nameko
context (so every service sees who is asking), and executes the query with depth and size
limits. It holds no business rules: composition, auth and shape only.
"""

from __future__ import annotations

import json
import logging
import uuid
from functools import lru_cache
from importlib import resources
from typing import Any

from graphql import DocumentNode, ExecutionResult, GraphQLError, execute, parse, validate
from nameko.containers import WorkerContext
from nameko.dependency_providers import Config
from nameko.extensions import DependencyProvider
from werkzeug.wrappers import Request, Response

from gateway import limits
from gateway.auth import Authenticator, TokenSettings, Unauthenticated
from gateway.console.service import Console
from gateway.context import RequestContext
from gateway.errors import Refused, user_errors
from gateway.schema import schema
from shared.caller import CALLER_CONTEXT_KEY, Caller
from shared.errors import VetaError
from shared.http import http
from shared.messaging import RpcProxy
from shared.observability import Operations, bind

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
GRAPHIQL = resources.files("gateway").joinpath("graphiql.html").read_text()


@lru_cache(maxsize=1024)
def checked_document(query: str, introspection: bool
                     ) -> tuple[DocumentNode | None, tuple[GraphQLError, ...]]:
    """A query parsed and validated against the schema, or why it is not valid.

    Clients send the same few documents over and over with other variables, and validating
    one costs more CPU than running it, so the verdict is kept by the document's text. Only
    the page sizes depend on the variables: `limits.check` judges those on every request.
    """
    try:
        document = parse(query)
    except GraphQLError as exc:
        return None, (exc,)
    errors = validate(schema.graphql_schema, document, limits.document_rules(introspection))
    return (None, tuple(errors)) if errors else (document, ())


class CallContext(DependencyProvider):
    """The worker's outgoing call context: what it holds travels with every RPC it makes."""

    def get_dependency(self, worker_ctx: WorkerContext) -> dict[str, Any]:
        return worker_ctx.data


class Tokens(DependencyProvider):
    def setup(self) -> None:
        self.authenticator = Authenticator(TokenSettings.from_config(self.container.config))

    def get_dependency(self, worker_ctx: WorkerContext) -> Authenticator:
        return self.authenticator


def json_response(body: dict[str, Any], status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


def refusal(code: str, message: str, status: int) -> Response:
    return json_response({"errors": [{"message": message, "extensions": {"code": code}}]},
                         status)


class GatewayService(Operations, Console):
    name = "gateway"

    certification = RpcProxy("certification")
    listings = RpcProxy("listings")
    orders = RpcProxy("orders")
    payouts = RpcProxy("payouts")
    call_context: dict[str, Any] = CallContext()
    tokens: Authenticator = Tokens()
    config: dict[str, Any] = Config()

    @http("GET", "/graphql")
    def graphiql(self, request: Request) -> Response:
        return Response(GRAPHIQL, mimetype="text/html")

    @http("POST", "/graphql")
    def graphql(self, request: Request) -> Response:
        if (request.content_length or 0) > MAX_BODY_BYTES:
            return refusal("BAD_USER_INPUT", f"requests are limited to {MAX_BODY_BYTES} bytes",
                           413)
        try:
            body = json.loads(request.get_data(cache=False, as_text=True) or "{}")
            query = body["query"]
            variables = body.get("variables") or {}
            if not isinstance(query, str) or not isinstance(variables, dict):
                raise ValueError
        except (ValueError, KeyError, TypeError):
            return refusal("BAD_USER_INPUT",
                           "send JSON with a string 'query' and an object 'variables'", 400)
        try:
            caller = self._caller(request)
        except Unauthenticated as exc:
            return refusal("UNAUTHENTICATED", str(exc), 401)

        correlation_id = request.headers.get("X-Correlation-Id") or str(uuid.uuid4())
        context = self._request_context(caller, correlation_id)
        result = self._execute(query, variables, body.get("operationName"), context)
        response: dict[str, Any] = {"data": result.data}
        if result.errors:
            response["errors"] = [self._error(e) for e in result.errors]
        response["extensions"] = {"rpcCalls": context.rpc_calls,
                                  "correlationId": correlation_id}
        return json_response(response)

    def _request_context(self, caller: Caller | None, correlation_id: str) -> RequestContext:
        """The caller and correlation id in the call context, so that every RPC of this
        request carries them, and the context resolvers run in (/graphql and the console)."""
        self.call_context["correlation_id"] = correlation_id
        bind(correlation_id=correlation_id)
        if caller is not None:
            self.call_context[CALLER_CONTEXT_KEY] = caller.context()
        return RequestContext(caller, {
            "certification": self.certification, "listings": self.listings,
            "orders": self.orders, "payouts": self.payouts,
        }, timeout=float(self.config.get("RPC_TIMEOUT", 10)))

    def _caller(self, request: Request) -> Caller | None:
        header = request.headers.get("Authorization")
        return None if header is None else self.tokens.caller(header)

    def _execute(self, query: str, variables: dict[str, Any], operation: str | None,
                 context: RequestContext) -> ExecutionResult:
        graphql_config = self.config.get("GRAPHQL") or {}
        document, invalid = checked_document(query, graphql_config.get("introspection", True))
        if document is None:
            return ExecutionResult(data=None, errors=list(invalid))
        errors = limits.check(schema.graphql_schema, document, variables,
                              max_cost=int(graphql_config.get("max_cost", limits.MAX_COST)))
        if errors:
            return ExecutionResult(data=None, errors=errors)
        result = execute(schema.graphql_schema, document, context_value=context,
                         variable_values=variables, operation_name=operation)
        assert isinstance(result, ExecutionResult)
        return result

    @staticmethod
    def _error(error: GraphQLError) -> dict[str, Any]:
        formatted: dict[str, Any] = dict(error.formatted)
        extensions = formatted.setdefault("extensions", {})
        if "code" in extensions:
            return formatted
        original = error.original_error
        if isinstance(original, VetaError | Refused):
            # A refusal raised in a nested field (a lot's producer while certification is
            # down, say) keeps its own code and message.
            first = user_errors(original)[0]
            formatted["message"] = first["message"]
            extensions.update(code=first["code"], field=first["field"])
        elif original is not None and error.path is not None:
            # Anything unexpected in a resolver is logged in full and shown only as a code.
            log.error("unexpected error in a resolver", exc_info=original)
            formatted["message"] = "internal error"
            extensions["code"] = "INTERNAL"
        else:
            # No path: the request itself was wrong (a variable that cannot be coerced).
            extensions["code"] = "BAD_USER_INPUT"
        return formatted
