"""The console's languages: which one a request gets, its gettext catalogue, and Babel's
formatting of numbers, grams, per mille, money and dates the way that language writes them.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from importlib import resources
from typing import Any

from babel import Locale
from babel.dates import format_date, format_datetime
from babel.numbers import format_currency, format_decimal, get_decimal_symbol
from babel.support import NullTranslations, Translations
from werkzeug.wrappers import Request

LANGUAGES = {"en": "English", "es": "Español"}
DEFAULT_LANGUAGE = "en"
LANGUAGE_COOKIE = "veta_lang"
DOMAIN = "messages"


def N_(message: str) -> str:
    """Marks a string for the catalogue; it is translated where it is shown."""
    return message


def choose_language(request: Request) -> str:
    """The language the user picked (cookie), else the browser's best match, else English."""
    chosen = request.cookies.get(LANGUAGE_COOKIE)
    if chosen in LANGUAGES:
        return str(chosen)
    return str(request.accept_languages.best_match(list(LANGUAGES), default=DEFAULT_LANGUAGE))


@lru_cache(maxsize=len(LANGUAGES))
def translations(language: str) -> NullTranslations:
    directory = resources.files("gateway.console").joinpath("translations")
    with resources.as_file(directory) as path:
        return Translations.load(str(path), [language], domain=DOMAIN)


def to_decimal(value: Any) -> Decimal | None:
    """API values are exact decimal strings; never go through float."""
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


_DECIMAL_INPUT = re.compile(r"^\s*([-\u2212]?)(\d+)(?:[.,](\d*))?\s*$")


def decimal_input(value: str) -> str:
    """What a person typed in a number field, as the API's decimal string.

    Either decimal mark is accepted ("915,0" in Spanish, "915.0" in English) and nothing
    else is changed: anything that is not a plain decimal goes to the API as typed, so that
    the API's own message explains what is wrong with it.
    """
    match = _DECIMAL_INPUT.match(value)
    if match is None:
        return value.strip()
    sign, whole, fraction = match.groups()
    sign = "-" if sign else ""
    return sign + (whole if fraction is None else f"{whole}.{fraction}")


class Formats:
    """Numbers, weights, money and dates for one locale (exact: Decimal, never float)."""

    def __init__(self, language: str) -> None:
        self.locale = Locale.parse(language)

    @property
    def decimal_mark(self) -> str:
        return str(get_decimal_symbol(self.locale))

    def grams(self, grams: Any) -> str:
        value = to_decimal(grams)
        if value is None:
            return "—"
        return f"{format_decimal(value, format='#,##0.000', locale=self.locale)} g"

    def fineness(self, per_mille: Any) -> str:
        value = to_decimal(per_mille)
        if value is None:
            return "—"
        return f"{format_decimal(value, format='#,##0.0', locale=self.locale)} ‰"

    def money(self, money: dict[str, str] | None) -> str:
        if not money:
            return "—"
        amount = to_decimal(money.get("amount"))
        if amount is None:
            return "—"
        return str(format_currency(amount, money.get("currency") or "USD", locale=self.locale))

    def number(self, value: Any, places: int = 0) -> str:
        number = to_decimal(value)
        if number is None:
            return "—"
        pattern = "#,##0" + ("." + "0" * places if places else "")
        return str(format_decimal(number, format=pattern, locale=self.locale))

    def date(self, value: str | dt.date | None) -> str:
        if not value:
            return "—"
        day = dt.date.fromisoformat(value) if isinstance(value, str) else value
        return str(format_date(day, "medium", locale=self.locale))

    def datetime(self, value: str | None) -> str:
        if not value:
            return "—"
        instant = dt.datetime.fromisoformat(value)
        if instant.tzinfo is None:
            instant = instant.replace(tzinfo=dt.UTC)
        return str(format_datetime(instant, "medium", tzinfo=dt.UTC, locale=self.locale)) \
            + " UTC"

    def month(self, value: str) -> str:
        """A month written as YYYY-MM, spelled out in the locale ("mar 2026")."""
        return str(format_date(dt.date.fromisoformat(value + "-01"), "MMM y",
                               locale=self.locale))


# The words of the domain as the API spells them, with the console's label for each.
LABELS = {
    "FAIRMINED": N_("Fairmined"),
    "FAIRMINED_ECOLOGICAL": N_("Fairmined Ecological"),
    "CRAFT": N_("CRAFT"),
    "DORE": N_("Doré bar"),
    "GRAIN": N_("Grain"),
    "NUGGET": N_("Nugget"),
    "CAST_BAR": N_("Cast bar"),
    "APPLICANT": N_("Applicant"),
    "CERTIFIED": N_("Certified"),
    "SUSPENDED": N_("Suspended"),
    "EXPIRED": N_("Expired"),
    "WITHDRAWN": N_("Withdrawn"),
    "DRAFT": N_("Draft"),
    "PUBLISHED": N_("Published"),
    "PARTIALLY_RESERVED": N_("Partly reserved"),
    "SOLD_OUT": N_("Sold out"),
    "PENDING": N_("Pending"),
    "CONFIRMED": N_("Confirmed"),
    "REJECTED": N_("Rejected"),
    "SHIPPED": N_("Shipped"),
    "DELIVERED": N_("Delivered"),
    "SETTLED": N_("Settled"),
    "CANCELLED": N_("Cancelled"),
    "DECLINED": N_("Declined"),
    "ON_HOLD": N_("On hold"),
    "CALCULATED": N_("Calculated"),
    "FUNDED": N_("Funded"),
    "APPROVED": N_("Approved"),
    "SUBMITTED": N_("Submitted"),
    "PAID": N_("Paid"),
    "FAILED": N_("Failed"),
    "REVERSED": N_("Reversed"),
    "MATCHED": N_("Matched"),
    "MISSING_IN_STRIPE": N_("Missing in Stripe"),
    "MISSING_IN_VETA": N_("Missing in Veta"),
    "AMOUNT_MISMATCH": N_("Amount differs"),
    "CURRENCY_MISMATCH": N_("Currency differs"),
    "DUPLICATE": N_("Duplicate"),
    "ACTIVE": N_("Active"),
    "FULFILLED": N_("Fulfilled"),
    "LAPSED": N_("Lapsed"),
    "ON_TRACK": N_("On track"),
    "BEHIND": N_("Behind"),
    "PAYMENT": N_("Buyer's payment"),
    "TRANSFER": N_("Transfer"),
    "REVERSAL": N_("Reversal"),
    "FUNDING": N_("Buyer's payment"),
    "RUNNING": N_("Running"),
    "DONE": N_("Done"),
    "APPROVAL_REQUESTED": N_("Approval requested"),
    "FUNDING_FAILED": N_("Buyer's payment failed"),
    "HELD": N_("Held"),
    "HOLD_RELEASED": N_("Hold released"),
    "HOLD_LIFTED": N_("Hold lifted"),
    "RETRY_FUNDING": N_("Payment tried again"),
    "RETRY_REQUESTED": N_("Retry requested"),
    "TRANSFER_FAILED": N_("Transfer failed"),
    "TRANSFER_UNANSWERED": N_("Stripe did not answer"),
    "PRODUCER": N_("Cooperative"),
    "BUYER": N_("Buyer"),
    "FINANCE": N_("Finance"),
    "CERTIFIER": N_("Certifier"),
    "ADMIN": N_("Administrator"),
}

# Messages the API sends for common mistakes, so that they can be shown translated; any
# other message is shown as the API wrote it (gettext returns it unchanged).
API_MESSAGES = (
    N_("weight has more than three decimals (milligrams)"),
    N_("weight must be greater than zero"),
    N_("weight must be a decimal number"),
    N_("fineness has more than one decimal"),
    N_("fineness must be above 0 and at most 999.9 per mille"),
    N_("fineness must be a decimal number"),
    N_("must be an ISO 3166-1 alpha-2 country code, such as CO or PE"),
    N_("Field required"),
    N_("String should have at least 1 character"),
    N_("no such order"),
    N_("no such lot"),
    N_("you already approved this payout: a second finance user must approve it"),
    N_("say why"),
    N_("a period is a month (2026-10) or a year (2026)"),
    N_("the month must be 01 to 12"),
    N_("only finance staff move money"),
)
