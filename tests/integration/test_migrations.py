"""Each service's migration history: what it builds matches the models, it goes down and up
again, and `veta migrate` from several pods at once applies each revision exactly once."""

from __future__ import annotations

import importlib
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from shared.migrations import alembic_config, upgrade
from shared.persistence import make_engine
from shared.settings import SERVICES
from tests.conftest import POSTGRES

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def empty_database() -> Iterator[str]:
    name = f"veta_test_migrate_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(POSTGRES)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg2://", 1)
    yield f"{base}/{name}"
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


def test_four_concurrent_migrations_of_one_database_all_succeed_once(
        empty_database: str) -> None:
    command = [sys.executable, "-m", "veta.cli", "migrate", "orders"]
    env = {"VETA_ORDERS_DATABASE_URL": empty_database, "PATH": "/usr/bin:/bin"}
    runs = [subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True) for _ in range(4)]
    outputs = [run.communicate(timeout=120)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0, 0], outputs

    engine = create_engine(empty_database)
    with engine.connect() as connection:
        versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    assert len(versions) == 1
    assert "orders" in inspect(engine).get_table_names()
    engine.dispose()
    # Running it again is a no-op.
    again = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=120)
    assert again.returncode == 0, again.stderr


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_each_history_builds_what_the_models_say_and_goes_down_and_up_again(
        service: str, dialect: str, empty_database: str, tmp_path: Path) -> None:
    url = empty_database if dialect == "postgresql" else f"sqlite:///{tmp_path / 'veta.db'}"
    metadata = importlib.import_module(f"services.{service}.store").Base.metadata
    upgrade(service, url)
    engine = make_engine(url)
    with engine.connect() as connection:
        differences = compare_metadata(
            MigrationContext.configure(connection, opts={"compare_type": True}), metadata)
    assert differences == [], f"{service}'s migrations and models differ: {differences}"

    command.downgrade(alembic_config(service, url), "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    upgrade(service, url)
    assert set(metadata.tables) <= set(inspect(engine).get_table_names())
    engine.dispose()
