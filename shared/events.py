"""The envelope every Veta event travels in, and the registry the event catalogue is built from.

Each service declares its events in its own `events.py` as subclasses of `Event`, one class
per fact, past tense, versioned. Consumers ignore fields they do not know, so a producer can
add a field without breaking anyone; renaming or removing one needs a new schema version.
"""

from __future__ import annotations

import builtins
from datetime import UTC, datetime
from typing import Any, ClassVar
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field


def utcnow() -> datetime:
    return datetime.now(UTC)


class Event(BaseModel):
    """Envelope fields shared by all events; subclasses add the facts."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    source: ClassVar[str]
    type: ClassVar[str]
    schema_version: ClassVar[int] = 1

    event_id: UUID = Field(default_factory=uuid4)
    occurred_at: datetime = Field(default_factory=utcnow)
    correlation_id: str | None = None

    registry: ClassVar[dict[tuple[str, str], builtins.type[Event]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "type" in cls.__dict__:
            Event.registry[(cls.source, cls.type)] = cls

    def envelope(self) -> dict[str, Any]:
        """The JSON document published on the wire: the envelope plus the facts."""
        body = self.model_dump(mode="json")
        body.update(type=self.type, source=self.source, schema_version=self.schema_version)
        return body

    @classmethod
    def from_envelope(cls, body: dict[str, Any]) -> Any:
        return cls.model_validate(body)
