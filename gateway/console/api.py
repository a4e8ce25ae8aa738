"""The console's way to the GraphQL API: run a document as the signed-in user, and sort the
typed errors of a mutation's payload by the form field each one names.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from graphql import ExecutionResult, GraphQLInputObjectType, GraphQLObjectType

from gateway.schema import schema

log = logging.getLogger(__name__)

Run = Callable[[str, dict[str, Any]], ExecutionResult]


class ApiError(Exception):
    """A query the API refused or could not answer, with the API's error code."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.field = code, message, field


@dataclass
class Outcome:
    """A mutation's result, or its typed errors: by field, and those naming no form field."""

    result: Any = None
    by_field: dict[str, list[str]] = field(default_factory=dict)
    general: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.by_field and not self.general


class Api:
    def __init__(self, run: Run) -> None:
        self._run = run

    def query(self, document: str, **variables: Any) -> dict[str, Any]:
        result = self._run(document, variables)
        if result.errors:
            raise _api_error(result)
        return dict(result.data or {})

    def mutate(self, document: str, form_fields: set[str] | None = None,
               **variables: Any) -> Outcome:
        """Run a mutation whose payload has one result field and `errors`.

        An error whose field is one of `form_fields` goes beside that field; any other is
        shown above the form.
        """
        result = self._run(document, variables)
        if result.errors:
            error = _api_error(result)
            return Outcome(general=[error.message])
        [payload] = (result.data or {}).values()
        outcome = Outcome()
        for error in payload.get("errors") or []:
            name = error.get("field")
            if name and form_fields is not None and name in form_fields:
                outcome.by_field.setdefault(name, []).append(error["message"])
            else:
                outcome.general.append(error["message"])
        if outcome.ok:
            outcome.result = next((value for key, value in payload.items() if key != "errors"),
                                  None)
        return outcome


def _api_error(result: ExecutionResult) -> ApiError:
    first = (result.errors or [])[0]
    extensions = first.extensions or {}
    code = extensions.get("code")
    if code is None and first.original_error is not None:
        log.error("unexpected error answering the console", exc_info=first.original_error)
        return ApiError("INTERNAL", "internal error")
    return ApiError(str(code or "BAD_USER_INPUT"), first.message, extensions.get("field"))


def offers(type_name: str, field_name: str) -> bool:
    """Whether the API has this field today (pages built ahead of the API check first)."""
    graphql_type = schema.graphql_schema.get_type(type_name)
    if not isinstance(graphql_type, GraphQLObjectType | GraphQLInputObjectType):
        return False
    return field_name in graphql_type.fields


def offers_mutation(name: str) -> bool:
    return offers("Mutation", name)


def offers_query(name: str) -> bool:
    return offers("Query", name)
