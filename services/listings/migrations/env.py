"""Alembic environment for the listings database."""

from services.listings.store import Base
from shared.migrations import run_env

run_env(Base.metadata)
