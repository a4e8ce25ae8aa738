"""A bench run's own RabbitMQ vhost and migrated PostgreSQL databases, removed afterwards.

`VETA_TEST_POSTGRES` names the server (the default is local TCP; a URL may name a Unix socket
directory: `postgresql://postgres@/postgres?host=/var/run/postgresql`). RabbitMQ's management
API must be on its default local port.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg2
import requests
from sqlalchemy.engine import make_url

from shared.migrations import upgrade
from shared.settings import SERVICES

POSTGRES = os.environ.get("VETA_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
RABBIT_API = "http://guest:guest@127.0.0.1:15672/api"
SECRET = "bench-" + uuid.uuid4().hex


@contextmanager
def backends(port: int, workers: int) -> Iterator[dict[str, Any]]:
    """The nameko config of a system on a fresh vhost and databases, the gateway on `port`."""
    run = uuid.uuid4().hex[:8]
    vhost = f"veta_bench_{run}"
    requests.put(f"{RABBIT_API}/vhosts/{vhost}", timeout=10).raise_for_status()
    requests.put(f"{RABBIT_API}/permissions/{vhost}/guest",
                 json={"configure": ".*", "write": ".*", "read": ".*"},
                 timeout=10).raise_for_status()
    admin = psycopg2.connect(POSTGRES)
    admin.autocommit = True
    server = make_url(POSTGRES).set(drivername="postgresql+psycopg2")
    names = {s: f"veta_bench_{run}_{s}" for s in SERVICES}
    urls = {s: server.set(database=name).render_as_string(hide_password=False)
            for s, name in names.items()}
    try:
        with admin.cursor() as cursor:
            for name in names.values():
                cursor.execute(f'CREATE DATABASE "{name}"')
        for service, url in urls.items():
            upgrade(service, url)
        yield {"AMQP_URI": f"amqp://guest:guest@127.0.0.1:5672/{vhost}", "DATABASES": urls,
               "WEB_SERVER_ADDRESS": f"127.0.0.1:{port}", "serializer": "json",
               "WEB_SERVER_ADDRESSES": dict.fromkeys(SERVICES, "127.0.0.1:0"),
               "max_workers": workers,
               "JWT": {"secret": SECRET, "issuer": "veta", "audience": "veta"}}
    finally:
        with admin.cursor() as cursor:
            for name in names.values():
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
        requests.delete(f"{RABBIT_API}/vhosts/{vhost}", timeout=10)
