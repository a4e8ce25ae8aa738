"""The errors Veta's services raise, each with a stable code the gateway shows to callers.

Pure Python so that domain modules can raise them; `shared.messaging` registers them with
nameko so that they cross RPC as themselves rather than as a generic RemoteError.
"""

from __future__ import annotations

from typing import Any


class VetaError(Exception):
    """A refusal a caller can act on. `code` is one of the gateway's error codes."""

    code = "BAD_USER_INPUT"

    def __init__(self, message: str, field: str | None = None) -> None:
        # nameko turns None into "None" when it serialises exception args: send "" instead.
        super().__init__(message, field or "")
        self.message = message
        self.field = field or None

    def as_dicts(self) -> list[dict[str, Any]]:
        return [{"field": self.field, "code": self.code, "message": self.message}]


class InvalidInput(VetaError):
    """One or more fields broke a rule; nothing was written."""

    code = "BAD_USER_INPUT"

    def __init__(self, message: str, field: str | None = None,
                 problems: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message, field)
        self.problems = [{"field": p.get("field") or "", "message": p["message"]}
                         for p in (problems or [{"field": field, "message": message}])]
        self.args = (message, field or "", self.problems)

    def as_dicts(self) -> list[dict[str, Any]]:
        return [{"field": p["field"] or None, "code": self.code, "message": p["message"]}
                for p in self.problems]


class NotFound(VetaError):
    code = "NOT_FOUND"


class Conflict(VetaError):
    """The request is well formed but the current state forbids it."""

    code = "CONFLICT"


class Forbidden(VetaError):
    code = "FORBIDDEN"


class Unavailable(VetaError):
    """A trouble of the moment (a database connection lost): the caller should try again."""

    code = "UNAVAILABLE"


ALL_ERRORS: tuple[type[VetaError], ...] = (VetaError, InvalidInput, NotFound, Conflict, Forbidden,
                                           Unavailable)
