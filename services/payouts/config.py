"""Payouts' settings, read once from the nameko config: thresholds, timers, retries, Stripe.

`PAYOUTS: {four_eyes_threshold_cents, sweep_seconds, retry_base_seconds, ...}`
and `STRIPE: {api_key, api_base, webhook_secret}`; every value has a working default.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

DEFAULT_FOUR_EYES_THRESHOLD_CENTS = 1_000_000  # USD 10,000.00


@dataclass(frozen=True)
class PayoutSettings:
    four_eyes_threshold_cents: int = DEFAULT_FOUR_EYES_THRESHOLD_CENTS
    sweep_seconds: float = 2.0
    # A claim on a SUBMITTED transfer: longer than a Stripe call may take (its timeout).
    lease_seconds: float = 60.0
    retry_base_seconds: float = 30.0
    retry_cap_seconds: float = 3600.0
    stripe_timeout_seconds: float = 20.0
    # How often, at most, one connected account is asked of Stripe while premiums wait on
    # it: `account.updated` may never arrive, and a thousand waiting premiums ask once.
    account_refresh_seconds: float = 300.0
    # Stripe forgets an idempotency key after 24 hours: a transfer submitted, or a reversal
    # asked for, longer ago than this is looked for at Stripe before it is sent again.
    idempotency_window_seconds: float = 23 * 3600.0
    batch: int = 50
    onboarding_return_url: str = "http://127.0.0.1:8000/producer/payouts/onboarded"
    onboarding_refresh_url: str = "http://127.0.0.1:8000/producer/payouts/onboarding"
    api_key: str | None = None
    api_base: str | None = None
    webhook_secret: str | None = None

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.lease_seconds)

    @property
    def account_refresh(self) -> timedelta:
        return timedelta(seconds=self.account_refresh_seconds)

    @property
    def idempotency_window(self) -> timedelta:
        return timedelta(seconds=self.idempotency_window_seconds)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> PayoutSettings:
        payouts = {k: v for k, v in (config.get("PAYOUTS") or {}).items() if v is not None}
        stripe = config.get("STRIPE") or {}
        known = set(cls.__dataclass_fields__) - {"api_key", "api_base", "webhook_secret"}
        values: dict[str, Any] = {}
        for name in known & set(payouts):
            kind = type(getattr(cls, name))
            values[name] = kind(payouts[name])
        return cls(**values, api_key=stripe.get("api_key") or None,
                   api_base=stripe.get("api_base") or None,
                   webhook_secret=stripe.get("webhook_secret") or None)
