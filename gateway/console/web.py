"""One visit to the console: who is signed in (from an HttpOnly cookie), the language, the
CSRF token its forms carry, the API as that user, and rendering pages in that language.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from werkzeug.urls import iri_to_uri
from werkzeug.wrappers import Request, Response

from gateway.console import api
from gateway.console.i18n import (
    LABELS,
    LANGUAGES,
    N_,
    Formats,
    choose_language,
    translations,
)
from shared.caller import Caller, Role

SESSION_COOKIE = "veta_session"
CSRF_COOKIE = "veta_csrf"
FLASH_COOKIE = "veta_flash"
CSRF_FIELD = "csrf"
FOR_THE_SESSION = -1

# Where each role starts.
HOME = {Role.PRODUCER: "/cooperative", Role.BUYER: "/lots", Role.FINANCE: "/finance",
        Role.CERTIFIER: "/certifier", Role.ADMIN: "/certifier"}


@lru_cache(maxsize=len(LANGUAGES))
def environment(language: str) -> Environment:
    """One Jinja environment per language, with that language's catalogue installed."""
    env = Environment(loader=PackageLoader("gateway.console", "templates"),
                      autoescape=select_autoescape(default=True), undefined=StrictUndefined,
                      extensions=["jinja2.ext.i18n", "jinja2.ext.do"], trim_blocks=True,
                      lstrip_blocks=True)
    catalogue = translations(language)
    env.install_gettext_translations(catalogue, newstyle=True)  # type: ignore[attr-defined]
    formats = Formats(language)

    def label(value: str | None) -> str:
        """The console's word for an API enum value (a status, a standard, a form)."""
        return catalogue.gettext(LABELS.get(value, value)) if value else "—"

    env.filters.update(grams=formats.grams, fineness=formats.fineness, money=formats.money,
                       date=formats.date, datetime=formats.datetime, number=formats.number,
                       month=formats.month, label=label, api_message=catalogue.gettext)
    env.globals.update(lang=language, languages=LANGUAGES, decimal_mark=formats.decimal_mark,
                       offers_mutation=api.offers_mutation, offers_query=api.offers_query)
    return env


def local_path(target: str | None, default: str = "/") -> str:
    """Only paths on this site: never an open redirect to another host."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


class Visit:
    def __init__(self, request: Request, caller: Caller | None, run: api.Run) -> None:
        self.request = request
        self.caller = caller
        self.language = choose_language(request)
        self.api = api.Api(run)
        self.gettext: Callable[[str], str] = translations(self.language).gettext
        self.csrf = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)
        self._new_csrf = CSRF_COOKIE not in request.cookies
        self._cookies: list[tuple[str, str, int]] = []

    # -- forms -------------------------------------------------------------------------

    @property
    def form(self) -> Mapping[str, str]:
        return self.request.form

    def csrf_ok(self) -> bool:
        sent = self.request.form.get(CSRF_FIELD, "")
        known = self.request.cookies.get(CSRF_COOKIE, "")
        return bool(known) and hmac.compare_digest(sent.encode(), known.encode())

    # -- who ---------------------------------------------------------------------------

    @property
    def organisation(self) -> str:
        return (self.caller.organisation if self.caller else None) or ""

    def may(self, *roles: Role) -> bool:
        return self.caller is not None and (self.caller.role in roles
                                            or self.caller.role is Role.ADMIN)

    # -- responses ---------------------------------------------------------------------

    def render(self, template: str, status: int = 200, **values: Any) -> Response:
        flash = self.request.cookies.get(FLASH_COOKIE)
        page = environment(self.language).get_template(template).render(
            visit=self, caller=self.caller, csrf=self.csrf, path=self.request.full_path
            .rstrip("?"), flash=self.gettext(FLASH.get(flash or "", "")) if flash in FLASH
            else None, **values)
        response = Response(page, status=status, mimetype="text/html")
        if flash:
            self.forget(FLASH_COOKIE)
        return self.finish(response)

    def redirect(self, target: str, flash: str | None = None) -> Response:
        if flash:
            self.remember(FLASH_COOKIE, flash, 60)
        response = Response("", status=303, headers={"Location": iri_to_uri(target)})
        return self.finish(response)

    def remember(self, name: str, value: str, max_age: int) -> None:
        self._cookies.append((name, value, max_age))

    def forget(self, name: str) -> None:
        self._cookies.append((name, "", 0))

    def sign_in(self, token: str, expires_at: int) -> None:
        self.remember(SESSION_COOKIE, token, max(expires_at - int(time.time()), 0))
        # A new session gets a new CSRF token, so one learnt before signing in is worthless.
        self.csrf = secrets.token_urlsafe(32)
        self.remember(CSRF_COOKIE, self.csrf, FOR_THE_SESSION)

    def finish(self, response: Response) -> Response:
        secure = self.request.scheme == "https" or \
            self.request.headers.get("X-Forwarded-Proto") == "https"
        if self._new_csrf and not any(name == CSRF_COOKIE for name, _, _ in self._cookies):
            self._cookies.append((CSRF_COOKIE, self.csrf, FOR_THE_SESSION))
        for name, value, max_age in self._cookies:
            # Scripts never need these, and SameSite=Strict keeps them off other sites' requests.
            response.set_cookie(name, value, max_age=None if max_age == FOR_THE_SESSION
                                else max_age, path="/", secure=secure, httponly=True,
                                samesite="Strict")
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
        return response


# Messages shown once after a redirect, by key (the cookie carries the key, never text).
FLASH = {
    "signed-out": N_("You are signed out."),
    "lot-published": N_("The lot is published."),
    "draft-saved": N_("The draft is saved. Only your cooperative sees it."),
    "lot-saved": N_("Your changes to the lot are saved."),
    "lot-withdrawn": N_("The lot is withdrawn."),
    "order-placed": N_("Order placed. It is pending until the lot reserves the gold."),
    "order-shipped": N_("The order is marked as shipped."),
    "order-declined": N_("The order is declined."),
    "order-cancelled": N_("The order is cancelled."),
    "delivery-confirmed": N_("Delivery confirmed. The cooperative's premium is now owed."),
    "commitment-created": N_("The commitment is made. Deliveries that match it count towards "
                             "it."),
    "commitment-amended": N_("The commitment is amended; what was delivered still counts."),
    "commitment-cancelled": N_("The commitment is cancelled."),
    "producer-registered": N_("The cooperative is registered."),
    "certification-granted": N_("The certification is recorded."),
    "certification-changed": N_("The certification's status is changed."),
    "payout-approve": N_("Your approval is recorded."),
    "payout-reject": N_("The payout is rejected; its approvals are void."),
    "payout-release": N_("The hold is released."),
    "payout-retry": N_("The payout is being tried again."),
    "payout-reverse": N_("The amount is taken back from the cooperative's Stripe account."),
    "reconciliation-run": N_("The reconciliation has run."),
    "discrepancy-resolved": N_("The discrepancy is resolved; your note is kept."),
    "session-expired": N_("Your session has ended. Sign in again."),
}
