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


class EmbeddedSystem:
    """Every service in its own nameko container, in this one process.

    Containers rather than one ServiceRunner, because each container runs its own web server
    and two on one address cannot both bind it: the gateway gets the port asked for, payouts
    (Stripe's webhooks) the next one, and every other service an ephemeral port.
    """

    def __init__(self, config: dict[str, Any], port: int) -> None:
        from nameko.containers import ServiceContainer

        from veta.services import SERVICE_CLASSES

        self.addresses = {name: "127.0.0.1:0" for name in SERVICE_CLASSES}
        self.addresses.update(gateway=f"127.0.0.1:{port}", payouts=f"127.0.0.1:{port + 1}")
        self.containers = [
            ServiceContainer(cls, {**config, "WEB_SERVER_ADDRESS": self.addresses[name]})
            for name, cls in SERVICE_CLASSES.items()]

    def start(self) -> None:
        for container in self.containers:
            container.start()

    def stop(self) -> None:
        for container in reversed(self.containers):
            container.stop()

    def wait(self) -> None:
        """Until any container stops or dies (then stop the rest, like nameko's runner)."""
        import eventlet
        from eventlet.event import Event

        finished = Event()

        def watch(container: Any) -> None:
            try:
                container.wait()
            finally:
                if not finished.ready():
                    finished.send(container.service_name)

        for container in self.containers:
            eventlet.spawn_n(watch, container)
        finished.wait()
        self.stop()


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
    return {"producers": [p[0] for p in producers], "lots": lots}


def _publish_when_certified(rpc: Any, lot: dict[str, Any]) -> dict[str, Any]:
    """Publishing waits for listings to hear of the certificate, which travels by event."""
    import eventlet

    from shared.errors import Forbidden

    for _ in range(500):
        try:
            return dict(rpc.listings.publish_listing(lot))
        except Forbidden:
            eventlet.sleep(0.01)
    raise RuntimeError("listings never heard of the demo certificates")
