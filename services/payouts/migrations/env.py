"""Alembic environment for the payouts database."""

from services.payouts.store import Base
from shared.migrations import run_env

run_env(Base.metadata)
