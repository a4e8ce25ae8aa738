"""Cheap refusals for expensive queries: a depth limit, a cost limit, introspection off.

Cost is counted on the parsed document before anything runs: each field costs 1, and the
fields under a field that takes `first` cost that many times over (20 when not given), so
a page of 100 lots with their producers and certificates costs about what it will do.
"""

from __future__ import annotations

from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationRule,
    VariableNode,
    get_named_type,
)
from graphql.validation import ASTValidationRule, NoSchemaIntrospectionCustomRule, specified_rules

MAX_DEPTH = 8
MAX_COST = 5000
DEFAULT_PAGE = 20
MAX_PAGE = 100


def _page(field: FieldNode, variables: dict[str, Any]) -> Any:
    """The page size a paginated field asks for (DEFAULT_PAGE when not given)."""
    value: Any = DEFAULT_PAGE
    for argument in field.arguments or ():
        if argument.name.value != "first":
            continue
        if isinstance(argument.value, IntValueNode):
            value = int(argument.value.value)
        elif isinstance(argument.value, VariableNode):
            value = variables.get(argument.value.name.value, DEFAULT_PAGE)
    return DEFAULT_PAGE if value is None else value


class Measure:
    """Cost and depth of a document, each fragment measured once per type it is spread in.

    Without the memo a "fragment bomb" (each fragment spreading the previous one twice)
    costs exponential time to measure; with it, time grows with the document's size.
    """

    def __init__(self, schema: GraphQLSchema, fragments: dict[str, FragmentDefinitionNode],
                 variables: dict[str, Any]) -> None:
        self.schema, self.fragments, self.variables = schema, fragments, variables
        self.memo: dict[tuple[str, str], tuple[int, int]] = {}
        self.open: set[str] = set()
        self.bad_pages: list[str] = []

    def page(self, node: FieldNode) -> int:
        """A valid page size; one outside 1..100 is noted (and refused) and counts as 1, so
        that a negative page can never pay for the rest of the query."""
        value = _page(node, self.variables)
        if isinstance(value, int) and 1 <= value <= MAX_PAGE:
            return value
        self.bad_pages.append(node.name.value)
        return 1

    def selection(self, parent: GraphQLNamedType | None,
                  selection_set: SelectionSetNode | None) -> tuple[int, int]:
        """(cost, depth) of a selection: 1 per field, times the page under a paginated one."""
        if selection_set is None:
            return 0, 0
        cost = depth = 0
        for node in selection_set.selections:
            if isinstance(node, FieldNode):
                definition = (parent.fields.get(node.name.value)
                              if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType)
                              else None)
                child = get_named_type(definition.type) if definition is not None else None
                inner_cost, inner_depth = self.selection(child, node.selection_set)
                paginated = definition is not None and "first" in definition.args
                cost += 1 + (self.page(node) if paginated else 1) * inner_cost
                if not node.name.value.startswith("__"):
                    depth = max(depth, 1 + inner_depth if node.selection_set else 0)
            elif isinstance(node, InlineFragmentNode):
                condition = (self.schema.get_type(node.type_condition.name.value)
                             if node.type_condition else parent)
                inner_cost, inner_depth = self.selection(condition, node.selection_set)
                cost, depth = cost + inner_cost, max(depth, inner_depth)
            elif isinstance(node, FragmentSpreadNode):
                inner_cost, inner_depth = self.spread(node.name.value)
                cost, depth = cost + inner_cost, max(depth, inner_depth)
        return cost, depth

    def spread(self, name: str) -> tuple[int, int]:
        fragment = self.fragments.get(name)
        if fragment is None or name in self.open:  # unknown or cyclic: other rules say so
            return 0, 0
        key = (name, fragment.type_condition.name.value)
        if key not in self.memo:
            self.open.add(name)
            self.memo[key] = self.selection(self.schema.get_type(key[1]),
                                            fragment.selection_set)
            self.open.discard(name)
        return self.memo[key]


def check(schema: GraphQLSchema, document: DocumentNode, variables: dict[str, Any],
          max_cost: int = MAX_COST, max_depth: int = MAX_DEPTH) -> list[GraphQLError]:
    """Each operation's refusals for its page sizes, depth and cost with these variables.

    Run on a document the specified rules found valid; the page sizes may come from the
    variables, so this is the part of validation that runs again for every request.
    """
    fragments = {d.name.value: d for d in document.definitions
                 if isinstance(d, FragmentDefinitionNode)}
    errors: list[GraphQLError] = []
    for node in document.definitions:
        if not isinstance(node, OperationDefinitionNode):
            continue
        measure = Measure(schema, fragments, variables)
        cost, depth = measure.selection(schema.get_root_type(node.operation),
                                        node.selection_set)
        for field in dict.fromkeys(measure.bad_pages):
            errors.append(GraphQLError(
                f"first must be between 1 and {MAX_PAGE} on {field}", node,
                extensions={"code": "BAD_USER_INPUT", "field": "first"}))
        if depth > max_depth:
            errors.append(GraphQLError(
                f"this query is {depth} levels deep, beyond the limit of {max_depth}",
                node, extensions={"code": "BAD_USER_INPUT", "depth": depth}))
        if cost > max_cost:
            errors.append(GraphQLError(
                f"this query would cost {cost}, above the limit of {max_cost}; "
                "ask for fewer items or fewer fields", node,
                extensions={"code": "BAD_USER_INPUT", "cost": cost}))
    return errors


def limits(max_cost: int, max_depth: int, variables: dict[str, Any]
           ) -> type[ValidationRule]:
    """`check` as a validation rule, for validating a document in one pass."""

    class Limits(ValidationRule):
        def enter_document(self, node: DocumentNode, *_args: Any) -> None:
            for error in check(self.context.schema, node, variables, max_cost, max_depth):
                self.report_error(error)

    return Limits


def document_rules(introspection: bool = True) -> tuple[type[ASTValidationRule], ...]:
    """The rules that judge a document alone, whatever its variables."""
    if introspection:
        return tuple(specified_rules)
    return (*specified_rules, NoSchemaIntrospectionCustomRule)


def rules(variables: dict[str, Any], *, introspection: bool = True,
          max_cost: int = MAX_COST) -> tuple[type[ASTValidationRule], ...]:
    return (*document_rules(introspection), limits(max_cost, MAX_DEPTH, variables))
