"""Stripe as payouts uses it: the SDK client, the calls made, and what each error means.

Every POST carries Veta's own idempotency key. An error is either *definitive* (Stripe made
nothing under that key: a new attempt may use a new key) or *unanswered* (it may have made
it: only the same key may be sent again). When in doubt it is unanswered, which can delay a
payment but never double one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import stripe
from nameko.containers import WorkerContext
from nameko.extensions import DependencyProvider

from services.payouts.config import PayoutSettings
from shared.errors import Conflict

# Definitive refusals worth retrying by themselves: money or onboarding will come.
RETRYABLE_CODES = frozenset({"balance_insufficient", "insufficient_capabilities_for_transfer",
                             "no_connected_account"})


@dataclass(frozen=True)
class Refusal:
    """How a failed call ended: `definitive` or not, with Stripe's code and message."""

    definitive: bool
    code: str
    message: str

    @property
    def retryable(self) -> bool:
        return not self.definitive or self.code in RETRYABLE_CODES


def refusal(error: Exception) -> Refusal:
    """Sort an error from the SDK (or the network under it)."""
    if isinstance(error, stripe.CardError):
        return Refusal(True, error.code or "card_declined", error.user_message or str(error))
    if isinstance(error, stripe.RateLimitError):
        return Refusal(False, "rate_limit", "Stripe asked us to slow down (429)")
    if isinstance(error, stripe.APIConnectionError):
        return Refusal(False, "network", "no answer from Stripe (network or timeout)")
    if isinstance(error, stripe.IdempotencyError):
        # The key was used with other parameters: a person must look before anything else.
        return Refusal(True, "idempotency_error", error.user_message or str(error))
    if isinstance(error, stripe.InvalidRequestError):
        if error.http_status == 409:  # the same key is being processed concurrently
            return Refusal(False, error.code or "lock_timeout", error.user_message or str(error))
        return Refusal(True, error.code or "invalid_request",
                       error.user_message or str(error))
    if isinstance(error, stripe.AuthenticationError | stripe.PermissionError):
        return Refusal(True, "authentication", "Stripe refused Veta's API key")
    if isinstance(error, stripe.StripeError):
        return Refusal(False, getattr(error, "code", None) or "api_error",
                       error.user_message or str(error) or "Stripe failed")
    return Refusal(False, "network", f"{type(error).__name__}: {error}")


def timestamp(seconds: int | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(int(seconds), UTC)


class StripeApi:
    """The calls payouts makes, returning plain dicts (StripeObject is not a mapping)."""

    def __init__(self, settings: PayoutSettings) -> None:
        if not settings.api_key:
            raise Conflict("Stripe is not configured (set VETA_STRIPE_API_KEY)", field="")
        base = {"api": settings.api_base} if settings.api_base else None
        self.client = stripe.StripeClient(
            settings.api_key, base_addresses=base,  # type: ignore[arg-type]
            # Retries are Veta's: a retry must go through the state kept in the database.
            max_network_retries=0,
            http_client=stripe.RequestsClient(timeout=settings.stripe_timeout_seconds))

    @staticmethod
    def _options(key: str | None, account: str | None = None) -> Any:
        options: dict[str, str] = {}
        if key:
            options["idempotency_key"] = key
        if account:
            options["stripe_account"] = account
        return options

    def create_account(self, producer_id: str, country: str | None, key: str) -> dict[str, Any]:
        params: Any = {"type": "express", "capabilities": {"transfers": {"requested": True}},
                       "metadata": {"producer_id": producer_id}}
        if country:
            params["country"] = country
        return self.client.v1.accounts.create(params, self._options(key)).to_dict()

    def account_link(self, account: str, refresh_url: str, return_url: str) -> dict[str, Any]:
        return self.client.v1.account_links.create({
            "account": account, "refresh_url": refresh_url, "return_url": return_url,
            "type": "account_onboarding"}).to_dict()

    def retrieve_account(self, account: str) -> dict[str, Any]:
        return self.client.v1.accounts.retrieve(account).to_dict()

    def create_transfer(self, params: dict[str, Any], key: str) -> dict[str, Any]:
        return self.client.v1.transfers.create(params, self._options(key)).to_dict()  # type: ignore[arg-type]

    def transfers_of(self, transfer_group: str, obligation_id: str) -> list[dict[str, Any]]:
        """Transfers Stripe holds for an obligation, every page of its order's group: looked
        for before a new key is used, and before a key Stripe may have forgotten is re-sent."""
        found = self.client.v1.transfers.list({"transfer_group": transfer_group, "limit": 100})
        listed = [t.to_dict() for t in found.auto_paging_iter()]
        return [t for t in listed if (t.get("metadata") or {}).get("obligation_id")
                == obligation_id]

    def create_payment_intent(self, params: dict[str, Any], key: str) -> dict[str, Any]:
        return self.client.v1.payment_intents.create(params, self._options(key)).to_dict()  # type: ignore[arg-type]

    def confirm_payment_intent(self, intent: str, payment_method: str | None,
                               key: str) -> dict[str, Any]:
        params: Any = {"off_session": True}
        if payment_method:
            params["payment_method"] = payment_method
        return self.client.v1.payment_intents.confirm(intent, params,
                                                      self._options(key)).to_dict()

    def create_reversal(self, transfer_id: str, amount: int, metadata: dict[str, str],
                        key: str) -> dict[str, Any]:
        return self.client.v1.transfers.reversals.create(
            transfer_id, {"amount": amount, "metadata": metadata}, self._options(key)).to_dict()

    def reversal_made_under(self, transfer_id: str, key: str) -> dict[str, Any] | None:
        """The transfer's reversal whose metadata carries Veta's idempotency `key`, if Stripe
        made one (every page: a transfer may have been reversed many times)."""
        found = self.client.v1.transfers.reversals.list(transfer_id, {"limit": 100})
        for reversal in found.auto_paging_iter():
            made = reversal.to_dict()
            if (made.get("metadata") or {}).get("idempotency_key") == key:
                return made
        return None

    def balance_transactions(self, start: datetime, end: datetime) -> Iterator[dict[str, Any]]:
        """The platform's balance transactions created in [start, end), every page, with the
        source (and a reversal's transfer) expanded so that metadata names the obligation."""
        first = self.client.v1.balance_transactions.list({
            "created": {"gte": int(start.timestamp()), "lt": int(end.timestamp())},
            "limit": 100, "expand": ["data.source", "data.source.transfer"]})
        for bt in first.auto_paging_iter():
            yield bt.to_dict()


def verified_event(payload: bytes, signature: str | None, secret: str) -> dict[str, Any]:
    """A webhook's event, if its signature is Stripe's and fresh; raises ValueError or
    stripe.SignatureVerificationError otherwise."""
    event = stripe.Webhook.construct_event(payload, signature, secret)
    body: dict[str, Any] = event.to_dict()
    return body


class Stripe(DependencyProvider):
    """Gives each worker the Stripe calls, or a Conflict saying Stripe is not configured."""

    def setup(self) -> None:
        self.settings = PayoutSettings.from_config(self.container.config)
        self.api: StripeApi | None = None

    def get_dependency(self, worker_ctx: WorkerContext) -> StripeAccess:
        return StripeAccess(self)


class StripeAccess:
    """Made lazily, so a service without Stripe still starts and answers everything else."""

    def __init__(self, provider: Stripe) -> None:
        self.provider = provider

    @property
    def configured(self) -> bool:
        return bool(self.provider.settings.api_key)

    @property
    def api(self) -> StripeApi:
        if self.provider.api is None:
            self.provider.api = StripeApi(self.provider.settings)
        return self.provider.api
