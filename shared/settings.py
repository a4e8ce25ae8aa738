"""Configuration from the environment: one place that turns VETA_* variables into nameko config.

Secrets (the JWT secret, Stripe keys) are only ever read from the environment, or for the
embedded default from a file the CLI generates in the data directory; never from the repo.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

SERVICES = ("certification", "listings", "orders", "payouts")
DEFAULT_AMQP_URI = "amqp://guest:guest@127.0.0.1:5672/"


def database_url(service: str, environ: Mapping[str, str] | None = None) -> str | None:
    env = os.environ if environ is None else environ
    return env.get(f"VETA_{service.upper()}_DATABASE_URL")


def nameko_config(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The nameko config for a real deployment, read from VETA_* variables."""
    env = os.environ if environ is None else environ
    databases = {name: url for name in SERVICES if (url := database_url(name, env))}
    return {
        "AMQP_URI": env.get("VETA_AMQP_URI", DEFAULT_AMQP_URI),
        "WEB_SERVER_ADDRESS": env.get("VETA_HTTP_ADDRESS", "0.0.0.0:8000"),
        "DATABASES": databases,
        "max_workers": int(env.get("VETA_MAX_WORKERS", "10")),
        "serializer": "json",
        "JWT": {
            "secret": env.get("VETA_JWT_SECRET"),
            "issuer": env.get("VETA_JWT_ISSUER", "veta"),
            "audience": env.get("VETA_JWT_AUDIENCE", "veta"),
            "jwks_url": env.get("VETA_JWT_JWKS_URL"),
        },
        "STRIPE": {
            "api_key": env.get("VETA_STRIPE_API_KEY"),
            "api_base": env.get("VETA_STRIPE_API_BASE"),
            "webhook_secret": env.get("VETA_STRIPE_WEBHOOK_SECRET"),
        },
        "RPC_TIMEOUT": float(env.get("VETA_RPC_TIMEOUT", "10")),
        "PAYOUTS": payouts_settings(env),
        "GRAPHQL": {
            "introspection": env.get("VETA_GRAPHQL_INTROSPECTION", "true").lower() != "false",
            "max_cost": int(env.get("VETA_GRAPHQL_MAX_COST", "5000")),
        },
    }


def payouts_settings(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """VETA_PAYOUTS_* variables: its four-eyes threshold, sweep, retries, onboarding URLs.
    Unset ones are left out, so the payouts service's own defaults apply."""
    env = os.environ if environ is None else environ
    names = {"four_eyes_threshold_cents": "FOUR_EYES_THRESHOLD_CENTS",
             "sweep_seconds": "SWEEP_SECONDS", "lease_seconds": "LEASE_SECONDS",
             "retry_base_seconds": "RETRY_BASE_SECONDS",
             "retry_cap_seconds": "RETRY_CAP_SECONDS",
             "stripe_timeout_seconds": "STRIPE_TIMEOUT_SECONDS",
             "account_refresh_seconds": "ACCOUNT_REFRESH_SECONDS",
             "idempotency_window_seconds": "IDEMPOTENCY_WINDOW_SECONDS",
             "onboarding_return_url": "ONBOARDING_RETURN_URL",
             "onboarding_refresh_url": "ONBOARDING_REFRESH_URL"}
    return {key: env[f"VETA_PAYOUTS_{name}"] for key, name in names.items()
            if env.get(f"VETA_PAYOUTS_{name}")}
