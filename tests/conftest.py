"""Test fixtures shared by every level: real PostgreSQL databases and RabbitMQ vhosts.

eventlet must patch the standard library before anything imports sockets or threads.
"""

import eventlet

eventlet.monkey_patch()

import os  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from typing import Any  # noqa: E402

import psycopg2  # noqa: E402
import pytest  # noqa: E402
from nameko.testing.utils import find_free_port  # noqa: E402

from shared.migrations import upgrade  # noqa: E402
from shared.settings import SERVICES  # noqa: E402

POSTGRES = os.environ.get("VETA_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
JWT_SECRET = "test-secret-" + uuid.uuid4().hex


def _admin_connection() -> Any:
    connection = psycopg2.connect(POSTGRES)
    connection.autocommit = True
    return connection


@pytest.fixture(scope="session")
def database_urls() -> Iterator[dict[str, str]]:
    """One throw-away PostgreSQL database per service for this test run, migrated."""
    run = uuid.uuid4().hex[:8]
    base = POSTGRES.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg2://", 1)
    names = {service: f"veta_test_{run}_{service}" for service in SERVICES}
    connection = _admin_connection()
    with connection.cursor() as cursor:
        for name in names.values():
            cursor.execute(f'CREATE DATABASE "{name}"')
    urls = {service: f"{base}/{name}" for service, name in names.items()}
    for service, url in urls.items():
        upgrade(service, url)
    yield urls
    with connection.cursor() as cursor:
        for name in names.values():
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    connection.close()


@pytest.fixture
def veta_config(rabbit_config: dict[str, Any], database_urls: dict[str, str]) -> dict[str, Any]:
    """nameko config for one test: its own RabbitMQ vhost, the run's databases, web ports."""
    return {
        **rabbit_config,
        "DATABASES": database_urls,
        "WEB_SERVER_ADDRESS": f"127.0.0.1:{find_free_port()}",
        # Every service serves probes (and payouts Stripe's webhooks) on its own address:
        # two nameko web servers in one process on one address would split its requests.
        "WEB_SERVER_ADDRESSES": {"certification": "127.0.0.1:0", "listings": "127.0.0.1:0",
                                 "orders": "127.0.0.1:0",
                                 "payouts": f"127.0.0.1:{find_free_port()}"},
        "JWT": {"secret": JWT_SECRET, "issuer": "veta", "audience": "veta"},
        "OUTBOX": {"sweep_seconds": 0.2},
        "RPC_TIMEOUT": 10,
        "serializer": "json",
    }
