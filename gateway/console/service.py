"""The web console's HTTP entrypoints, mixed into the gateway service beside /graphql.

Each entrypoint only names its page; the pages (one module per group of users) run GraphQL
against the in-process schema as the signed-in user, through the gateway's own pieces.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from importlib import resources
from typing import Any

from graphql import ExecutionResult
from werkzeug.wrappers import Request, Response

from gateway.auth import Authenticator, Unauthenticated
from gateway.console.api import ApiError
from gateway.console.pages import access, buyer, certifier, cooperative, finance
from gateway.console.web import SESSION_COOKIE, Visit
from gateway.context import RequestContext
from shared.caller import Caller, Role
from shared.http import http

log = logging.getLogger(__name__)

Page = Callable[..., Response]
ANYONE: tuple[Role, ...] = ()

STATIC = {"console.css": "text/css", "console.js": "text/javascript",
          "favicon.svg": "image/svg+xml"}


class Console:
    """The console's routes. The gateway service provides the token check and GraphQL."""

    tokens: Authenticator
    _request_context: Callable[[Caller | None, str], RequestContext]
    _execute: Callable[[str, dict[str, Any], str | None, RequestContext], ExecutionResult]

    # -- signing in, language, assets ---------------------------------------------------

    @http("GET", "/")
    def console_home(self, request: Request) -> Response:
        return self._page(request, access.home, None)

    @http("GET", "/sign-in")
    def console_sign_in_form(self, request: Request) -> Response:
        return self._page(request, access.sign_in_form, None)

    @http("POST", "/sign-in")
    def console_sign_in(self, request: Request) -> Response:
        return self._page(request, access.sign_in, None, check=self.tokens.caller)

    @http("POST", "/sign-out")
    def console_sign_out(self, request: Request) -> Response:
        return self._page(request, access.sign_out, None)

    @http("GET", "/language")
    def console_language(self, request: Request) -> Response:
        return self._page(request, access.language, None)

    @http("GET", "/static/<name>")
    def console_static(self, request: Request, name: str) -> Response:
        if name not in STATIC:
            return Response("not found", status=404)
        body = resources.files("gateway.console").joinpath("static", name).read_bytes()
        return Response(body, mimetype=STATIC[name],
                        headers={"Cache-Control": "public, max-age=3600",
                                 "X-Content-Type-Options": "nosniff"})

    # -- cooperatives ------------------------------------------------------------------

    @http("GET", "/cooperative")
    def console_cooperative(self, request: Request) -> Response:
        return self._page(request, cooperative.home, (Role.PRODUCER,))

    @http("POST", "/cooperative/payout-account")
    def console_onboard(self, request: Request) -> Response:
        return self._page(request, cooperative.onboard, (Role.PRODUCER,))

    @http("GET,POST", "/cooperative/lots/new")
    def console_new_lot(self, request: Request) -> Response:
        return self._page(request, cooperative.new_lot, (Role.PRODUCER,))

    @http("GET,POST", "/cooperative/lots/<lot_id>/edit")
    def console_edit_lot(self, request: Request, lot_id: str) -> Response:
        return self._page(request, cooperative.edit_lot, (Role.PRODUCER,), lot_id=lot_id)

    @http("POST", "/cooperative/lots/<lot_id>/publish")
    def console_publish_lot(self, request: Request, lot_id: str) -> Response:
        return self._page(request, cooperative.publish_draft, (Role.PRODUCER,), lot_id=lot_id)

    @http("POST", "/cooperative/lots/<lot_id>/withdraw")
    def console_withdraw_lot(self, request: Request, lot_id: str) -> Response:
        return self._page(request, cooperative.withdraw_lot, (Role.PRODUCER,), lot_id=lot_id)

    @http("POST", "/cooperative/orders/<order_id>/<action>")
    def console_cooperative_order(self, request: Request, order_id: str,
                                  action: str) -> Response:
        return self._page(request, cooperative.order_action, (Role.PRODUCER,),
                          order_id=order_id, action=action)

    # -- buyers ------------------------------------------------------------------------

    @http("GET", "/lots")
    def console_lots(self, request: Request) -> Response:
        return self._page(request, buyer.search, ANYONE)

    @http("GET", "/lots/<lot_id>")
    def console_lot(self, request: Request, lot_id: str) -> Response:
        return self._page(request, buyer.lot, ANYONE, lot_id=lot_id)

    @http("POST", "/lots/<lot_id>/order")
    def console_order_lot(self, request: Request, lot_id: str) -> Response:
        return self._page(request, buyer.place_order, (Role.BUYER,), lot_id=lot_id)

    @http("GET", "/orders")
    def console_orders(self, request: Request) -> Response:
        return self._page(request, buyer.orders, (Role.BUYER,))

    @http("GET", "/orders/<order_id>")
    def console_order(self, request: Request, order_id: str) -> Response:
        return self._page(request, buyer.order, (Role.BUYER, Role.PRODUCER, Role.FINANCE),
                          order_id=order_id)

    @http("POST", "/orders/<order_id>/<action>")
    def console_buyer_order(self, request: Request, order_id: str, action: str) -> Response:
        return self._page(request, buyer.order_action, (Role.BUYER,), order_id=order_id,
                          action=action)

    @http("GET", "/commitments")
    def console_commitments(self, request: Request) -> Response:
        return self._page(request, buyer.commitments, (Role.BUYER,))

    @http("GET,POST", "/commitments/new")
    def console_new_commitment(self, request: Request) -> Response:
        return self._page(request, buyer.new_commitment, (Role.BUYER,))

    @http("GET", "/commitments/<commitment_id>")
    def console_commitment(self, request: Request, commitment_id: str) -> Response:
        return self._page(request, buyer.commitment, (Role.BUYER,),
                          commitment_id=commitment_id)

    @http("POST", "/commitments/<commitment_id>/<action>")
    def console_commitment_action(self, request: Request, commitment_id: str,
                                  action: str) -> Response:
        return self._page(request, buyer.commitment_action, (Role.BUYER,),
                          commitment_id=commitment_id, action=action)

    # -- finance -----------------------------------------------------------------------

    @http("GET", "/finance")
    def console_finance(self, request: Request) -> Response:
        return self._page(request, finance.home, (Role.FINANCE,))

    @http("GET", "/finance/payouts/<payout_id>")
    def console_payout(self, request: Request, payout_id: str) -> Response:
        return self._page(request, finance.payout, (Role.FINANCE,), payout_id=payout_id)

    @http("GET,POST", "/finance/payouts/<payout_id>/<action>")
    def console_payout_action(self, request: Request, payout_id: str, action: str) -> Response:
        return self._page(request, finance.payout_action, (Role.FINANCE,),
                          payout_id=payout_id, action=action)

    @http("GET,POST", "/finance/reconciliations")
    def console_reconciliations(self, request: Request) -> Response:
        return self._page(request, finance.reconciliations, (Role.FINANCE,))

    @http("GET", "/finance/reconciliations/<run_id>")
    def console_reconciliation(self, request: Request, run_id: str) -> Response:
        return self._page(request, finance.reconciliation, (Role.FINANCE,), run_id=run_id)

    @http("GET", "/finance/reconciliations/<run_id>/csv")
    def console_reconciliation_csv(self, request: Request, run_id: str) -> Response:
        return self._page(request, finance.reconciliation_csv, (Role.FINANCE,), run_id=run_id)

    @http("GET,POST", "/finance/reconciliations/<run_id>/lines/<line_id>/resolve")
    def console_resolve_discrepancy(self, request: Request, run_id: str,
                                    line_id: str) -> Response:
        return self._page(request, finance.resolve, (Role.FINANCE,), run_id=run_id,
                          line_id=line_id)

    # -- certifiers --------------------------------------------------------------------

    @http("GET,POST", "/certifier")
    def console_certifier(self, request: Request) -> Response:
        return self._page(request, certifier.home, (Role.CERTIFIER,))

    @http("GET,POST", "/certifier/producers/<producer_id>")
    def console_producer(self, request: Request, producer_id: str) -> Response:
        return self._page(request, certifier.producer, (Role.CERTIFIER,),
                          producer_id=producer_id)

    @http("GET,POST",
          "/certifier/producers/<producer_id>/certifications/<certification_id>/<action>")
    def console_certification_action(self, request: Request, producer_id: str,
                                     certification_id: str, action: str) -> Response:
        return self._page(request, certifier.certification_action, (Role.CERTIFIER,),
                          producer_id=producer_id, certification_id=certification_id,
                          action=action)

    # -- one visit ---------------------------------------------------------------------

    def _page(self, request: Request, page: Page, roles: tuple[Role, ...] | None,
              **kwargs: Any) -> Response:
        """Run `page` for the signed-in caller holding one of `roles` (None: no sign-in)."""
        caller, expired = self._signed_in(request)
        context: RequestContext | None = None

        def run(document: str, variables: dict[str, Any]) -> ExecutionResult:
            nonlocal context
            if context is None:
                # Built on first use, the same way /graphql builds it: the caller and a
                # correlation id travel with every RPC this visit makes.
                context = self._request_context(caller, str(uuid.uuid4()))
            return self._execute(document, variables, None, context)

        visit = Visit(request, caller, run)
        if request.method == "POST" and not visit.csrf_ok():
            return access.refused(visit, 403, "CSRF")
        if roles is not None and caller is None:
            if expired:
                visit.forget(SESSION_COOKIE)
            return visit.redirect(f"/sign-in?next={request.full_path.rstrip('?')}",
                                  flash="session-expired" if expired else None)
        if roles and not visit.may(*roles):
            return access.refused(visit, 403, "FORBIDDEN")
        try:
            return page(visit, **kwargs)
        except ApiError as error:
            if error.code == "UNAUTHENTICATED":
                visit.forget(SESSION_COOKIE)
                return visit.redirect("/sign-in", flash="session-expired")
            status = {"FORBIDDEN": 403, "NOT_FOUND": 404, "UNAVAILABLE": 503}.get(error.code,
                                                                                  500)
            return access.refused(visit, status, error.code, error.message)
        except Exception:
            # Logged in full here; the person sees a plain apology, never a traceback.
            log.exception("the console failed to show %s", request.path)
            return access.refused(visit, 500, "INTERNAL")

    def _signed_in(self, request: Request) -> tuple[Caller | None, bool]:
        """The caller the session cookie's token names, and whether a cookie was refused."""
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            return None, False
        try:
            return self.tokens.caller(f"Bearer {token}"), False
        except Unauthenticated:
            return None, True
