"""Alembic environment for the certification database."""

from services.certification.store import Base
from shared.migrations import run_env

run_env(Base.metadata)
