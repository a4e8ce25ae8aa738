"""Who is asking: the identity the gateway verified, carried to every service in the call context.

The gateway checks permissions first; each service checks ownership again from this context
(defence in depth), so a call that skipped the gateway gains nothing.
"""

from __future__ import annotations

import enum
import logging
from typing import Any

from nameko.containers import WorkerContext
from nameko.extensions import DependencyProvider
from pydantic import BaseModel, ConfigDict, ValidationError

from shared.errors import Forbidden

CALLER_CONTEXT_KEY = "caller"
log = logging.getLogger(__name__)


class Role(enum.StrEnum):
    PRODUCER = "PRODUCER"
    BUYER = "BUYER"
    CERTIFIER = "CERTIFIER"
    FINANCE = "FINANCE"
    ADMIN = "ADMIN"


ORGANISATION_ROLES = frozenset({Role.PRODUCER, Role.BUYER})


class Caller(BaseModel):
    model_config = ConfigDict(frozen=True)

    subject: str
    role: Role
    organisation: str | None = None

    def context(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def require(self, *roles: Role) -> None:
        if self.role not in roles and self.role is not Role.ADMIN:
            raise Forbidden(f"role {self.role} may not do this")

    def require_organisation(self, role: Role, organisation: str) -> None:
        """Only `role` acting for `organisation` (or an administrator) may proceed."""
        if self.role is Role.ADMIN:
            return
        if self.role is not role or self.organisation != organisation:
            raise Forbidden(f"only {role} {organisation} may do this")


class CallerIdentity(DependencyProvider):
    """Injects the verified caller, or None when a call carries no identity (an event)."""

    def get_dependency(self, worker_ctx: WorkerContext) -> Caller | None:
        data = worker_ctx.context_data.get(CALLER_CONTEXT_KEY)
        if not data:
            return None
        try:
            return Caller.model_validate(data)
        except ValidationError:
            # Failing here would fail before nameko can answer: the caller would wait forever.
            # An identity that does not parse is no identity, and `required` refuses it.
            log.warning("refusing a malformed caller in the call context: %r", data)
            return None


def required(caller: Caller | None) -> Caller:
    if caller is None:
        raise Forbidden("this call needs an authenticated caller")
    return caller
