"""Cheap refusals for expensive queries: a depth limit, a cost limit, introspection off.

Cost is counted on the parsed document before anything runs: each field costs 1, and the
fields under a field that takes `first` cost that many times over (20 when not given), so
a page of 100 lots with their producers and certificates costs about what it will do.
"""

from __future__ import annotations

from typing import Any

from graphene.validation import depth_limit_validator
from graphql import (
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
    ValidationContext,
    ValidationRule,
    VariableNode,
    get_named_type,
)
from graphql.validation import ASTValidationRule, NoSchemaIntrospectionCustomRule, specified_rules

MAX_DEPTH = 8
MAX_COST = 5000
DEFAULT_PAGE = 20


def _page(field: FieldNode, variables: dict[str, Any]) -> int:
    for argument in field.arguments or ():
        if argument.name.value != "first":
            continue
        if isinstance(argument.value, IntValueNode):
            return int(argument.value.value)
        if isinstance(argument.value, VariableNode):
            value = variables.get(argument.value.name.value)
            return value if isinstance(value, int) else DEFAULT_PAGE
    return DEFAULT_PAGE


def selection_cost(parent: GraphQLNamedType | None, selection_set: SelectionSetNode | None,
                   fragments: dict[str, FragmentDefinitionNode], schema: GraphQLSchema,
                   variables: dict[str, Any], seen: frozenset[str] = frozenset()) -> int:
    """What a selection costs: 1 per field, times the page size under a paginated field."""
    if selection_set is None:
        return 0
    total = 0
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            definition = (parent.fields.get(selection.name.value)
                          if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType)
                          else None)
            child = get_named_type(definition.type) if definition is not None else None
            inner = selection_cost(child, selection.selection_set, fragments, schema,
                                   variables, seen)
            paginated = definition is not None and "first" in definition.args
            total += 1 + (_page(selection, variables) if paginated else 1) * inner
        elif isinstance(selection, InlineFragmentNode):
            condition = (schema.get_type(selection.type_condition.name.value)
                         if selection.type_condition else parent)
            total += selection_cost(condition, selection.selection_set, fragments, schema,
                                    variables, seen)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            if name in fragments and name not in seen:
                fragment = fragments[name]
                total += selection_cost(schema.get_type(fragment.type_condition.name.value),
                                        fragment.selection_set, fragments, schema, variables,
                                        seen | {name})
    return total


def cost_limit(max_cost: int, variables: dict[str, Any]) -> type[ValidationRule]:
    class CostLimit(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            self.fragments = {d.name.value: d for d in context.document.definitions
                              if isinstance(d, FragmentDefinitionNode)}

        def enter_operation_definition(self, node: OperationDefinitionNode,
                                       *_args: Any) -> None:
            schema = self.context.schema
            root = schema.get_root_type(node.operation)
            cost = selection_cost(root, node.selection_set, self.fragments, schema, variables)
            if cost > max_cost:
                self.report_error(GraphQLError(
                    f"this query would cost {cost}, above the limit of {max_cost}; "
                    "ask for fewer items or fewer fields", node,
                    extensions={"code": "BAD_USER_INPUT", "cost": cost}))

    return CostLimit


def rules(variables: dict[str, Any], *, introspection: bool = True,
          max_cost: int = MAX_COST) -> tuple[type[ASTValidationRule], ...]:
    extra: list[type[ASTValidationRule]] = [depth_limit_validator(max_depth=MAX_DEPTH),
                                         cost_limit(max_cost, variables)]
    if not introspection:
        extra.append(NoSchemaIntrospectionCustomRule)
    return (*specified_rules, *extra)
