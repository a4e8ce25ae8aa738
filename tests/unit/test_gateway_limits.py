"""Query depth and cost are judged on the document alone, before anything runs."""

from __future__ import annotations

from typing import Any

import graphene
from graphql import FragmentDefinitionNode, OperationDefinitionNode, parse, validate

from gateway.limits import Measure, rules


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
    assert errors(nested(8)) == []
    assert errors(nested(9)) == ["this query is 9 levels deep, beyond the limit of 8"]


def test_cost_multiplies_by_the_page_size_asked_for() -> None:
    # 1 (veins) + 50 x (1 name + 1 branches + 10 x 1 name) = 601
    query = "{ veins(first: 50) { name branches(first: 10) { name } } }"
    assert errors(query, max_cost=601) == []
    [message] = errors(query, max_cost=600)
    assert "cost 601" in message


def test_cost_reads_page_sizes_from_variables_and_fragments() -> None:
    query = """query ($n: Int) { veins(first: $n) { ...v } }
               fragment v on Vein { name branch { name } }"""
    assert errors(query, {"n": 100}, max_cost=301) == []  # 1 + 100 x (1 + 1 + 1)
    assert errors(query, {"n": 100}, max_cost=300) != []


def test_a_negative_or_huge_page_is_refused_and_cannot_lower_the_cost() -> None:
    # A negative page counts as one item, not as a discount on the rest of the query.
    query = "{ a: veins(first: -100000) { name } b: veins(first: 100) { name } }"
    assert errors(query, max_cost=103) == ["first must be between 1 and 100 on veins"]
    assert "cost 103" in errors(query, max_cost=102)[1]
    huge = "query ($n: Int) { veins(first: $n) { name } }"
    assert errors(huge, {"n": 1_000_000_000}) == ["first must be between 1 and 100 on veins"]


def test_a_fragment_bomb_is_measured_in_linear_time() -> None:
    fragments = ["fragment f0 on Vein { name }"] + [
        f"fragment f{n} on Vein {{ ...f{n - 1} branch {{ ...f{n - 1} }} }}" for n in
        range(1, 40)]
    query = "{ vein { ...f39 } } " + " ".join(fragments)
    assert any("levels deep" in m for m in errors(query))

    # Each fragment is measured once per type it is spread in: 40 fragments, not 2**40.
    measured: list[str] = []

    class Counting(Measure):
        def spread(self, name: str) -> tuple[int, int]:
            if (name, "Vein") not in self.memo:
                measured.append(name)
            return super().spread(name)

    document = parse(query)
    operation, *definitions = document.definitions
    assert isinstance(operation, OperationDefinitionNode)
    spreadable = {d.name.value: d for d in definitions if isinstance(d, FragmentDefinitionNode)}
    Counting(SCHEMA, spreadable, {}).selection(SCHEMA.query_type, operation.selection_set)
    assert sorted(measured) == sorted(f"f{n}" for n in range(40))


def test_introspection_is_refused_when_turned_off() -> None:
    query = "{ __schema { queryType { name } } }"
    assert errors(query) == []
    assert any("introspection" in m.lower() for m in errors(query, introspection=False))
