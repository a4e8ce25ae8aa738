"""Deployment settings come from VETA_* variables; every payouts setting can be set that way."""

from __future__ import annotations

from dataclasses import fields

from services.payouts.config import PayoutSettings
from shared.settings import nameko_config

STRIPE_OR_INTERNAL = {"api_key", "api_base", "webhook_secret", "batch"}


def test_every_payouts_setting_has_its_variable_and_reaches_the_service() -> None:
    settable = [f for f in fields(PayoutSettings) if f.name not in STRIPE_OR_INTERNAL]
    env = {f"VETA_PAYOUTS_{f.name.upper()}": ("https://veta.example/back"
                                               if f.name.endswith("_url") else "7")
           for f in settable}
    settings = PayoutSettings.from_config(nameko_config(env))
    for field in settable:
        expected = "https://veta.example/back" if field.name.endswith("_url") else 7
        assert getattr(settings, field.name) == expected, field.name


def test_unset_variables_leave_the_services_defaults() -> None:
    config = nameko_config({"VETA_ORDERS_DATABASE_URL": "postgresql://db/orders"})
    assert config["PAYOUTS"] == {}
    assert PayoutSettings.from_config(config) == PayoutSettings()
    assert config["DATABASES"] == {"orders": "postgresql://db/orders"}
    assert config["max_workers"] == 10 and config["RPC_TIMEOUT"] == 10.0
