"""The embedded default: every service and the gateway in one process, on SQLite files and
the in-process broker, with an optional set of demonstration data.
"""

from __future__ import annotations

import os
import secrets
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from nameko.standalone.rpc import ClusterRpcProxy

from shared.caller import CALLER_CONTEXT_KEY, Caller, Role
from shared.embedded import MEMORY_TRANSPORT_OPTIONS, use_memory_transport
from shared.migrations import upgrade
from shared.settings import SERVICES, nameko_config

DEFAULT_DATA_DIR = Path(".veta")


def jwt_secret(data_dir: Path) -> str:
    """VETA_JWT_SECRET if set; otherwise a secret generated once into the data directory."""
    if os.environ.get("VETA_JWT_SECRET"):
        return os.environ["VETA_JWT_SECRET"]
    path = data_dir / "jwt-secret"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(32))
    return path.read_text().strip()


def dev_config(data_dir: Path, port: int, amqp_uri: str | None = None) -> dict[str, Any]:
    data_dir.mkdir(parents=True, exist_ok=True)
    config = nameko_config()
    config["DATABASES"] = {name: f"sqlite:///{(data_dir / f'{name}.db').resolve()}"
                           for name in SERVICES}
    config["WEB_SERVER_ADDRESS"] = f"127.0.0.1:{port}"
    config["JWT"]["secret"] = jwt_secret(data_dir)
    if amqp_uri:
        config["AMQP_URI"] = amqp_uri
    else:
        use_memory_transport()
        config["AMQP_URI"] = "memory://localhost/"
        config["TRANSPORT_OPTIONS"] = MEMORY_TRANSPORT_OPTIONS
    return config


def embedded_runner(config: dict[str, Any], port: int) -> Any:
    """Every service and the gateway in one nameko runner, in this one process.

    Each service that serves HTTP gets its own address: the gateway the port asked for,
    payouts (Stripe's webhooks) the next one, the others a free one for their probes.
    """
    from nameko.runners import ServiceRunner

    from shared.http import ADDRESSES_CONFIG_KEY
    from veta.services import SERVICE_CLASSES

    addresses = {name: "127.0.0.1:0" for name in SERVICE_CLASSES}
    addresses.update(gateway=f"127.0.0.1:{port}", payouts=f"127.0.0.1:{port + 1}")
    runner = ServiceRunner({**config, ADDRESSES_CONFIG_KEY: addresses})
    for cls in SERVICE_CLASSES.values():
        runner.add_service(cls)
    return runner


def migrate_all(config: dict[str, Any]) -> None:
    for name, url in config["DATABASES"].items():
        upgrade(name, url)


def load_demo(config: dict[str, Any]) -> dict[str, Any]:
    """Three cooperatives, their certificates and lots, through the services' own commands."""
    admin = Caller(subject="veta-demo", role=Role.ADMIN)
    today = date.today()
    cooperatives = [
        ("Cooperativa Aurífera Río Verde", "CO", "Antioquia", "FAIRMINED_ECOLOGICAL",
         "Mina La Esperanza", "915.0", "1250.000"),
        ("Asociación Minera Sol Andino", "PE", "Puno", "FAIRMINED",
         "Socavón Santa Rosa", "880.5", "2400.000"),
        ("Cooperativa Oro Limpio del Sur", "BO", "La Paz", "CRAFT",
         "Veta Illimani", "902.0", "800.000"),
    ]
    producers = []
    with ClusterRpcProxy(config, context_data={CALLER_CONTEXT_KEY: admin.context()}) as rpc:
        for number, (name, country, region, standard, site, fineness, gross) in enumerate(
                cooperatives, start=1):
            producer = rpc.certification.register_producer(
                {"name": name, "country": country, "region": region})
            rpc.certification.grant_certification({
                "producer_id": producer["id"], "standard": standard,
                "certificate_number": f"DEMO-{country}-{number:04d}",
                "valid_from": (today - timedelta(days=200)).isoformat(),
                "valid_until": (today + timedelta(days=530)).isoformat()})
            producers.append((producer, standard, site, fineness, gross, country, region))
        lots = []
        for producer, standard, site, fineness, gross, country, region in producers:
            lots.append(_publish_when_certified(rpc, {
                "producer_id": producer["id"], "standard": standard, "form": "DORE",
                "gross_weight": gross, "fineness": fineness,
                "mine_site": {"name": site, "region": region, "country": country},
                "mercury_free": True, "assay_reference": f"ASSAY-{producer['id'][:8]}"}))
        # The demo buyer's sourcing commitment: 2 kg of Fairmined gold this quarter.
        quarter = date(today.year, 3 * ((today.month - 1) // 3) + 1, 1)
        quarter_end = (quarter + timedelta(days=92)).replace(day=1) - timedelta(days=1)
        commitment = rpc.orders.create_commitment({
            "buyer_id": "demo-refinery", "fine_weight": "2000.000",
            "standards": ["FAIRMINED", "FAIRMINED_ECOLOGICAL"],
            "period_start": quarter.isoformat(), "period_end": quarter_end.isoformat()})
    return {"producers": [p[0] for p in producers], "lots": lots,
            "commitments": [commitment]}


def _publish_when_certified(rpc: Any, lot: dict[str, Any]) -> dict[str, Any]:
    """Publishing waits for listings to hear of the certificate, which travels by event."""
    import eventlet

    from shared.errors import Conflict

    for _ in range(500):
        try:
            return dict(rpc.listings.publish_listing(lot))
        except Conflict:  # listings has not heard of the certificate yet
            eventlet.sleep(0.01)
    raise RuntimeError("listings never heard of the demo certificates")


def start_local_stripe(config: dict[str, Any], port: int) -> Any:
    """A local Stripe-compatible server in this process, its webhooks sent to payouts (the
    port after the gateway's); `config` is pointed at it, with brisk sweeps and retries."""
    from services.payouts.stripe_local import StripeLocal

    local = StripeLocal(webhook_urls=[f"http://127.0.0.1:{port + 1}/stripe/webhooks"])
    local.start()
    config["STRIPE"] = {"api_key": local.api_key, "api_base": local.url,
                        "webhook_secret": local.webhook_secret}
    config["PAYOUTS"] = {"sweep_seconds": 1.0, "retry_base_seconds": 5.0,
                         **(config.get("PAYOUTS") or {})}
    return local


def prepare_demo_payouts(config: dict[str, Any], demo: dict[str, Any], local: Any) -> None:
    """The demo buyer pays premiums with a test card, and the demo cooperatives finish Stripe
    onboarding at once, so a delivery's premium can go all the way to PAID offline."""
    import eventlet

    from shared.errors import NotFound

    finance = Caller(subject="veta-demo-finance", role=Role.FINANCE)
    with ClusterRpcProxy(config, context_data={CALLER_CONTEXT_KEY: finance.context()}) as rpc:
        rpc.payouts.set_buyer_funding({"buyer_id": "demo-refinery",
                                       "payment_method": "pm_card_visa"})
        for producer in demo["producers"]:
            for _ in range(500):  # payouts hears of producers by event
                try:
                    link = rpc.payouts.create_onboarding_link({"producer_id": producer["id"]})
                    break
                except NotFound:
                    eventlet.sleep(0.01)
            else:
                raise RuntimeError("payouts never heard of the demo producers")
            local.onboard_account(link["stripe_account_id"])
