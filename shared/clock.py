"""The time a service acts at, as a dependency, so that tests can set it instead of sleeping.

In production it is the system clock in UTC. Config `CLOCK: {"now": "2027-01-01T00:00:00+00:00"}`
pins it (tests, demos); domain functions never read a clock themselves, they are given `today`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from nameko.containers import WorkerContext
from nameko.extensions import DependencyProvider


class Now:
    def __init__(self, pinned: datetime | None = None) -> None:
        self.pinned = pinned

    def now(self) -> datetime:
        return self.pinned or datetime.now(UTC)

    def today(self) -> date:
        return self.now().date()


class Clock(DependencyProvider):
    def setup(self) -> None:
        pinned = (self.container.config.get("CLOCK") or {}).get("now")
        self.pinned = datetime.fromisoformat(pinned) if pinned else None

    def get_dependency(self, worker_ctx: WorkerContext) -> Now:
        return Now(self.pinned)

    def move_to(self, at: datetime) -> None:
        """Pin this container's clock at `at`: tests travel in time instead of sleeping."""
        if at.tzinfo is None:
            raise ValueError("give the instant with its time zone")
        self.pinned = at


def clock_of(container: Any) -> Clock:
    """The Clock dependency of a running nameko container, for a test to move."""
    for dependency in container.dependencies:
        if isinstance(dependency, Clock):
            return dependency
    raise LookupError(f"{container.service_name} has no Clock dependency")
