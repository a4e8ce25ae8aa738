"""Signing in with a token, signing out, choosing the language, and the refusal page.

The token is kept in an HttpOnly, SameSite=Strict cookie, so page scripts never see it and
other sites' requests never carry it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jwt
from werkzeug.wrappers import Response

from gateway.auth import Unauthenticated
from gateway.console.i18n import LANGUAGE_COOKIE, LANGUAGES, N_
from gateway.console.web import HOME, SESSION_COOKIE, Visit, local_path
from shared.caller import Caller

ONE_YEAR = 365 * 24 * 3600

REFUSALS = {
    "CSRF": N_("This form has expired. Go back, reload the page and try again."),
    "FORBIDDEN": N_("Your account may not open this page."),
    "NOT_FOUND": N_("There is nothing here, or it is not yours to see."),
    "UNAVAILABLE": N_("A part of Veta is not answering. Try again in a moment."),
    "NOT_OFFERED": N_("This page is not available yet."),
    "NO_ORGANISATION": N_("This page is for an account that acts for a cooperative or buyer."),
}


def home(visit: Visit) -> Response:
    if visit.caller is None:
        return visit.redirect("/sign-in")
    return visit.redirect(HOME[visit.caller.role])


def sign_in_form(visit: Visit) -> Response:
    if visit.caller is not None:
        return visit.redirect(HOME[visit.caller.role])
    return visit.render("access/sign_in.html", errors={}, next=_next(visit))


def sign_in(visit: Visit, check: Callable[[str], Caller]) -> Response:
    token = "".join(visit.form.get("token", "").split())
    try:
        if not token:
            raise Unauthenticated(visit.gettext("Paste the token you were given."))
        caller = check(f"Bearer {token}")
    except Unauthenticated as refused:
        return visit.render("access/sign_in.html", status=422, next=_next(visit),
                            errors={"token": [str(refused)]})
    expires_at = int(jwt.decode(token, options={"verify_signature": False})["exp"])
    visit.sign_in(token, expires_at)
    return visit.redirect(local_path(_next(visit), HOME[caller.role]))


def sign_out(visit: Visit) -> Response:
    visit.forget(SESSION_COOKIE)
    return visit.redirect("/sign-in", flash="signed-out")


def language(visit: Visit) -> Response:
    chosen = visit.request.args.get("lang", "")
    if chosen in LANGUAGES:
        visit.remember(LANGUAGE_COOKIE, chosen, ONE_YEAR)
    return visit.redirect(local_path(visit.request.args.get("next")))


def refused(visit: Visit, status: int, code: str, detail: str | None = None) -> Response:
    return visit.render("access/refused.html", status=status, code=code,
                        message=visit.gettext(REFUSALS.get(code, "")) if code in REFUSALS
                        else None, detail=detail)


def not_offered(visit: Visit) -> Response:
    """A page whose API has not landed yet: say so rather than show anything made up."""
    return refused(visit, 404, "NOT_OFFERED")


def _next(visit: Visit) -> str:
    value: Any = visit.request.values.get("next", "")
    return local_path(str(value), "")
