"""Query depth and cost are judged on the document alone, before anything runs."""

from __future__ import annotations

from typing import Any

import graphene
from graphql import parse, validate

from gateway.limits import rules


class Vein(graphene.ObjectType):
    name = graphene.String()
    branch = graphene.Field(lambda: Vein)
    branches = graphene.List(lambda: Vein, first=graphene.Int())


class Query(graphene.ObjectType):
    vein = graphene.Field(Vein)
    veins = graphene.List(Vein, first=graphene.Int())


SCHEMA = graphene.Schema(query=Query).graphql_schema


def errors(query: str, variables: dict[str, Any] | None = None, **options: Any) -> list[str]:
    return [e.message for e in validate(SCHEMA, parse(query), rules(variables or {}, **options))]


def nested(depth: int) -> str:
    return "{ vein " + "{ branch " * (depth - 1) + "{ name }" + " }" * depth


def test_a_query_eight_deep_runs_and_nine_deep_is_refused() -> None:
    assert errors(nested(7)) == []
    assert any("exceeds maximum operation depth" in m for m in errors(nested(9)))


def test_cost_multiplies_by_the_page_size_asked_for() -> None:
    # 1 (veins) + 50 x (1 name + 1 branches + 10 x 1 name) = 601
    query = "{ veins(first: 50) { name branches(first: 10) { name } } }"
    assert errors(query, max_cost=601) == []
    [message] = errors(query, max_cost=600)
    assert "cost 601" in message


def test_cost_reads_page_sizes_from_variables_and_fragments() -> None:
    query = """query ($n: Int) { veins(first: $n) { ...v } }
               fragment v on Vein { name branch { name } }"""
    assert errors(query, {"n": 100}, max_cost=401) == []  # 1 + 100 x (1 + 1 + 1)
    assert errors(query, {"n": 200}, max_cost=401) != []


def test_introspection_is_refused_when_turned_off() -> None:
    query = "{ __schema { queryType { name } } }"
    assert errors(query) == []
    assert any("introspection" in m.lower() for m in errors(query, introspection=False))
