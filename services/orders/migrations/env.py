"""Alembic environment for the orders database."""

from services.orders.store import Base
from shared.migrations import run_env

run_env(Base.metadata)
