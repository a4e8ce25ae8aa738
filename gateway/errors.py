"""Typed errors: what a caller sees when Veta refuses, as a code, a field and a message.

Mutations return their errors in the payload; queries raise them as GraphQL errors whose
`extensions.code` carries the same code. Service field paths arrive in snake_case and leave
in the schema's camelCase.
"""

from __future__ import annotations

from typing import Any

import graphene
from graphql import GraphQLError

from shared.errors import VetaError


class ErrorCode(graphene.Enum):
    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    NOT_FOUND = "NOT_FOUND"
    BAD_USER_INPUT = "BAD_USER_INPUT"
    CONFLICT = "CONFLICT"
    UNAVAILABLE = "UNAVAILABLE"


class UserError(graphene.ObjectType):
    field = graphene.String(description="The input field at fault, in camelCase, if any.")
    code = graphene.Field(ErrorCode, required=True)
    message = graphene.String(required=True)


class Refused(Exception):
    """Raised inside the gateway; becomes a typed error at the edge."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.field = code, message, field

    def as_dicts(self) -> list[dict[str, Any]]:
        return [{"field": self.field, "code": self.code, "message": self.message}]


def camel(path: str | None) -> str | None:
    if not path:
        return None
    return ".".join(_camel_part(part) for part in path.split("."))


def _camel_part(part: str) -> str:
    head, *rest = part.split("_")
    return head + "".join(word.capitalize() for word in rest)


def user_errors(exc: VetaError | Refused) -> list[dict[str, Any]]:
    return [{**error, "field": camel(error["field"])} for error in exc.as_dicts()]


def as_graphql_error(exc: VetaError | Refused) -> GraphQLError:
    first = user_errors(exc)[0]
    return GraphQLError(first["message"],
                        extensions={"code": first["code"], "field": first["field"]})
