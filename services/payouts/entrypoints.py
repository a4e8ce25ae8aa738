"""The timer payouts adapts: its sweep interval comes from `PAYOUTS.sweep_seconds`.

Payouts serves Stripe's webhooks with `shared.http`, on the service's own address.
"""

from __future__ import annotations

from nameko.timer import Timer

from services.payouts.config import PayoutSettings
from shared.http import http


class SweepTimer(Timer):
    def setup(self) -> None:
        self.interval = PayoutSettings.from_config(self.container.config).sweep_seconds


sweep = SweepTimer.decorator

__all__ = ["http", "sweep"]
