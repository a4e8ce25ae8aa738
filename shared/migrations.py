"""Alembic for every service: one migration history per service database.

`upgrade` is what `veta migrate`, `veta dev` and the tests call; `run_env` is the whole body
of each service's `migrations/env.py`. On PostgreSQL the upgrade holds an advisory lock, so
several pods running `veta migrate` at once apply each revision exactly once.
"""

from __future__ import annotations

import zlib
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, text

SERVICES_DIR = Path(__file__).resolve().parent.parent / "services"


def alembic_config(service: str, url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SERVICES_DIR / service / "migrations"))
    config.attributes["url"] = url
    config.attributes["service"] = service
    return config


def upgrade(service: str, url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(service, url), revision)


def run_env(metadata: MetaData) -> None:
    from shared.persistence import make_engine

    config = context.config
    url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError("no database URL given to the migration")
    engine = make_engine(url)
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            lock = zlib.crc32(f"veta-migrate-{config.attributes.get('service')}".encode())
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": lock})
            connection.commit()
        context.configure(connection=connection, target_metadata=metadata,
                          render_as_batch=connection.dialect.name == "sqlite",
                          compare_type=True)
        with context.begin_transaction():
            context.run_migrations()
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": lock})
            connection.commit()
    engine.dispose()
