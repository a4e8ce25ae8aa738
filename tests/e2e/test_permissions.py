"""The permission matrix of docs/permissions.md, walked for every mutation and every role.

Inputs are generated from the schema, well-formed but naming things that do not exist, so an
allowed call gets as far as the service (and is refused there as not found, bad input or a
conflict) while a refused one stops with FORBIDDEN. Acting for another organisation is
refused too.
"""

from __future__ import annotations

import re
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLScalarType,
    get_named_type,
    is_leaf_type,
)

from gateway.schema import schema
from shared.caller import Role
from tests.helpers import GraphQL
from veta.services import SERVICE_CLASSES

DOC = Path(__file__).resolve().parents[2] / "docs" / "permissions.md"
ROLES = [Role.PRODUCER, Role.BUYER, Role.CERTIFIER, Role.FINANCE, Role.ADMIN]
REFUSALS = {"FORBIDDEN", "UNAUTHENTICATED"}
ORGANISATION = {Role.PRODUCER: "producer-org", Role.BUYER: "buyer-org"}
SAMPLE_STRINGS = {"country": "CO", "fineness": "900.0", "minFineness": "900.0",
                  "currency": "USD", "period": "2026-10", "paymentMethod": "pm_card_visa"}


def matrix(section: str) -> dict[str, dict[Role, str]]:
    text = DOC.read_text().split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[0] not in ("mutation", "query") and \
                not cells[0].startswith("-"):
            rows[cells[0]] = dict(zip(ROLES, cells[1:], strict=True))
    return rows


MUTATIONS = matrix("Mutations")
MUTATION_FIELDS = schema.graphql_schema.mutation_type.fields


def sample(kind: GraphQLInputType, name: str, organisation: str) -> Any:
    """A well-formed value for an input field, naming nothing that exists."""
    if isinstance(kind, GraphQLNonNull):
        return sample(kind.of_type, name, organisation)
    if isinstance(kind, GraphQLList):
        return [sample(kind.of_type, name, organisation)]
    if isinstance(kind, GraphQLEnumType):
        return next(iter(kind.values))
    if isinstance(kind, GraphQLInputObjectType):
        return {field: sample(spec.type, field, organisation)
                for field, spec in kind.fields.items()
                if isinstance(spec.type, GraphQLNonNull)}
    assert isinstance(kind, GraphQLScalarType)
    if kind.name == "ID":
        return organisation if name in ("producerId", "buyerId") else str(uuid.uuid4())
    if kind.name in ("Int", "Float"):
        return 1
    if kind.name == "Boolean":
        return True
    if kind.name == "Date":
        return date.today().isoformat()
    if re.search(r"(weight|Weight)$", name):
        return "1.000"
    if re.search(r"(fineness|Fineness)$", name):
        return "900.0"
    return SAMPLE_STRINGS.get(name, "x")


def call(client: GraphQL, mutation: str, role: Role | None, organisation: str | None,
         acting_for: str | None = None) -> set[str]:
    """The error codes a mutation answers with for this caller."""
    field = MUTATION_FIELDS[mutation]
    arguments = {name: sample(arg.type, name, acting_for or organisation or "nobody")
                 for name, arg in field.args.items() if isinstance(arg.type, GraphQLNonNull)}
    declared = ", ".join(f"${name}: {arg.type}" for name, arg in field.args.items()
                         if name in arguments)
    passed = ", ".join(f"{name}: ${name}" for name in arguments)
    query = (f"mutation{f'({declared})' if declared else ''} "
             f"{{ {mutation}{f'({passed})' if passed else ''} {{ errors {{ code }} }} }}")
    if role is None:
        body = client.post(query, arguments).json()
        return {e["extensions"]["code"] for e in body.get("errors", [])} | {
            e["code"] for e in ((body.get("data") or {}).get(mutation) or {}).get("errors", [])}
    body = client.run(query, arguments, role=role, organisation=organisation)
    assert "errors" not in body, body["errors"]
    return {error["code"] for error in body["data"][mutation]["errors"]}


@pytest.fixture
def client(runner_factory: Any, veta_config: dict[str, Any]) -> GraphQL:
    runner_factory(veta_config, *SERVICE_CLASSES.values()).start()
    return GraphQL(veta_config)


def test_every_mutation_in_the_schema_is_in_the_matrix_and_no_other() -> None:
    assert set(MUTATION_FIELDS) - set(MUTATIONS) == set(), "document these in permissions.md"
    assert set(MUTATIONS) - set(MUTATION_FIELDS) == set(), "these are not in the schema"


def test_each_role_is_allowed_or_refused_as_the_matrix_says(client: GraphQL) -> None:
    wrong = []
    for mutation in sorted(set(MUTATIONS) & set(MUTATION_FIELDS)):
        if not call(client, mutation, None, None) & REFUSALS:
            wrong.append((mutation, "anonymous", "allowed"))
        for role in ROLES:
            expected = MUTATIONS[mutation][role]
            codes = call(client, mutation, role, ORGANISATION.get(role))
            refused = "FORBIDDEN" in codes
            if refused != (expected == "refuse") or "UNAUTHENTICATED" in codes:
                wrong.append((mutation, str(role), f"expected {expected}, got {codes}"))
    assert wrong == [], "\n".join(map(str, wrong))


def names_an_organisation(mutation: str) -> bool:
    argument = MUTATION_FIELDS[mutation].args.get("input")
    kind = argument.type.of_type if argument is not None else None
    return isinstance(kind, GraphQLInputObjectType) and bool(
        {"producerId", "buyerId"} & set(kind.fields))


def test_acting_for_another_organisation_is_refused(client: GraphQL) -> None:
    """Inputs that name the organisation acted for; ownership of existing orders, lots and
    payouts is tested with real objects in the services' own suites."""
    wrong = []
    for mutation in sorted(m for m in set(MUTATIONS) & set(MUTATION_FIELDS)
                           if names_an_organisation(m)):
        for role, expected in MUTATIONS[mutation].items():
            if expected != "own":
                continue
            codes = call(client, mutation, role, ORGANISATION[role], acting_for="someone-else")
            if "FORBIDDEN" not in codes:
                wrong.append((mutation, str(role), codes))
    assert wrong == [], "\n".join(map(str, wrong))


QUERIES = matrix("Queries")
QUERY_FIELDS = schema.graphql_schema.query_type.fields


def read(client: GraphQL, name: str, role: Role) -> set[str]:
    """The error codes a query answers with for this role."""
    field = QUERY_FIELDS[name]
    arguments = {arg_name: sample(arg.type, arg_name, ORGANISATION.get(role) or "nobody")
                 for arg_name, arg in field.args.items() if isinstance(arg.type, GraphQLNonNull)}
    declared = ", ".join(f"${n}: {field.args[n].type}" for n in arguments)
    passed = ", ".join(f"{n}: ${n}" for n in arguments)
    selection = "" if is_leaf_type(get_named_type(field.type)) else " { __typename }"
    query = (f"query{f'({declared})' if declared else ''} "
             f"{{ {name}{f'({passed})' if passed else ''}{selection} }}")
    body = client.run(query, arguments, role=role, organisation=ORGANISATION.get(role))
    return {error["extensions"]["code"] for error in body.get("errors", [])}


def test_every_query_in_the_schema_is_in_the_matrix_and_no_other() -> None:
    assert set(QUERY_FIELDS) - set(QUERIES) == set(), "document these in permissions.md"
    assert set(QUERIES) - set(QUERY_FIELDS) == set(), "these are not in the schema"


def test_each_role_may_read_what_the_matrix_says(client: GraphQL) -> None:
    wrong = []
    for name in sorted(set(QUERIES) & set(QUERY_FIELDS)):
        for role in ROLES:
            expected = QUERIES[name][role]
            codes = read(client, name, role)
            if ("FORBIDDEN" in codes) != (expected == "refuse") or "UNAUTHENTICATED" in codes:
                wrong.append((name, str(role), f"expected {expected}, got {codes}"))
    assert wrong == [], "\n".join(map(str, wrong))
