"""Limits on GraphQL documents, checked as validation rules before any resolver runs.

A single HTTP request can carry a deep, wide or aliased document that costs far more
than it looks (a thousand aliased `login` fields are a thousand password guesses), so
depth, aliases and root fields are bounded here; the token count is bounded by the
parser itself (``parse(max_tokens=…)``) and the variables' size by the executor.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from graphql import (
    ASTValidationRule,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    NoSchemaIntrospectionCustomRule,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
)

INTROSPECTION_ROOTS = frozenset({"__schema", "__type"})


@dataclass(frozen=True, slots=True)
class QueryLimits:
    max_depth: int
    max_aliases: int
    max_root_fields: int
    max_tokens: int
    max_variables_bytes: int
    introspection: bool
    suggestions: bool


def limit_rules(limits: QueryLimits) -> list[type[ASTValidationRule]]:
    """The validation rules that enforce ``limits`` (added to the standard ones)."""

    class MaxDepthRule(_OperationRule):
        def check(self, operation: OperationDefinitionNode) -> None:
            depth = _depth(self.context, operation.selection_set, set())
            if depth > limits.max_depth:
                self.report(
                    operation, f"Query depth {depth} exceeds the limit of {limits.max_depth}."
                )

    class MaxAliasesRule(_OperationRule):
        def check(self, operation: OperationDefinitionNode) -> None:
            aliases = sum(
                1 for field in _fields(self.context, operation.selection_set, set()) if field.alias
            )
            if aliases > limits.max_aliases:
                self.report(
                    operation, f"{aliases} aliases exceed the limit of {limits.max_aliases}."
                )

    class MaxRootFieldsRule(_OperationRule):
        def check(self, operation: OperationDefinitionNode) -> None:
            roots = sum(1 for _ in _top_fields(self.context, operation.selection_set, set()))
            if roots > limits.max_root_fields:
                self.report(
                    operation,
                    f"{roots} root fields exceed the limit of {limits.max_root_fields}.",
                )

    rules: list[type[ASTValidationRule]] = [MaxDepthRule, MaxAliasesRule, MaxRootFieldsRule]
    if not limits.introspection:
        rules.append(NoSchemaIntrospectionCustomRule)
    return rules


class _OperationRule(ASTValidationRule):
    context: ValidationContext

    def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
        self.check(node)

    def check(self, operation: OperationDefinitionNode) -> None:
        raise NotImplementedError

    def report(self, node: OperationDefinitionNode, message: str) -> None:
        self.report_error(GraphQLError(message, node))


def _depth(context: ValidationContext, selections: SelectionSetNode | None, seen: set[str]) -> int:
    """The deepest field nesting below ``selections``, fragments expanded (each at most
    once per path, so fragment cycles, which another rule reports, cannot loop)."""
    if selections is None:
        return 0
    deepest = 0
    for selection in selections.selections:
        if isinstance(selection, FieldNode) and selection.name.value in INTROSPECTION_ROOTS:
            # Only reachable where introspection is on (development); its own rule,
            # MaxIntrospectionDepthRule, bounds how deep it may go.
            deepest = max(deepest, 1)
        elif isinstance(selection, FieldNode):
            deepest = max(deepest, 1 + _depth(context, selection.selection_set, seen))
        elif isinstance(selection, InlineFragmentNode):
            deepest = max(deepest, _depth(context, selection.selection_set, seen))
        elif isinstance(selection, FragmentSpreadNode):
            fragment = _fragment(context, selection, seen)
            if fragment is not None:
                name = fragment.name.value
                deepest = max(deepest, _depth(context, fragment.selection_set, seen | {name}))
    return deepest


def _fields(
    context: ValidationContext, selections: SelectionSetNode | None, seen: set[str]
) -> Iterator[FieldNode]:
    """Every field below ``selections``, fragments expanded."""
    for field in _top_fields(context, selections, seen):
        yield field
        yield from _fields(context, field.selection_set, seen)


def _top_fields(
    context: ValidationContext, selections: SelectionSetNode | None, seen: set[str]
) -> Iterator[FieldNode]:
    """The fields of this level, looking through inline fragments and spreads."""
    if selections is None:
        return
    for selection in selections.selections:
        if isinstance(selection, FieldNode):
            yield selection
        elif isinstance(selection, InlineFragmentNode):
            yield from _top_fields(context, selection.selection_set, seen)
        elif isinstance(selection, FragmentSpreadNode):
            fragment = _fragment(context, selection, seen)
            if fragment is not None:
                yield from _top_fields(
                    context, fragment.selection_set, seen | {fragment.name.value}
                )


def _fragment(
    context: ValidationContext, spread: FragmentSpreadNode, seen: set[str]
) -> FragmentDefinitionNode | None:
    name = spread.name.value
    return None if name in seen else context.get_fragment(name)
