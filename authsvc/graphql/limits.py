"""Limits on GraphQL documents, checked as validation rules before any resolver runs.

A single HTTP request can carry a deep, wide or aliased document that costs far more
than it looks (a thousand aliased `login` fields are a thousand password guesses), so
depth, aliases and root fields are bounded here; the token count is bounded by the
parser itself (``parse(max_tokens=…)``) and the variables' size by the executor.

Every check here is linear in the document, however often its fragments are spread, so
the executor runs these rules before graphql-core's standard ones: a document over a
limit is refused before OverlappingFieldsCanBeMerged compares its fields pairwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from graphql import (
    ASTValidationRule,
    FieldNode,
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
    max_fields: int
    max_tokens: int
    max_variables_bytes: int
    introspection: bool
    suggestions: bool


def limit_rules(limits: QueryLimits) -> list[type[ASTValidationRule]]:
    """The validation rules that enforce ``limits`` (run before the standard ones)."""

    class QueryCostRule(ASTValidationRule):
        """Depth, aliases and root fields of each operation, fragments expanded.

        One instance serves one validation, so each fragment's cost is worked out once
        however often it is spread: the check stays linear in the document's size while
        the numbers it compares are those of the expanded document (``F`` spread twice
        counts its aliases twice, as execution would run them twice).
        """

        context: ValidationContext

        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            self.costs = _Costs(context)

        def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
            cost = self.costs.of(node.selection_set)
            if cost.depth > limits.max_depth:
                self.report(
                    node, f"Query depth {cost.depth} exceeds the limit of {limits.max_depth}."
                )
            if cost.aliases > limits.max_aliases:
                self.report(
                    node, f"{cost.aliases} aliases exceed the limit of {limits.max_aliases}."
                )
            if cost.fields > limits.max_root_fields:
                self.report(
                    node, f"{cost.fields} root fields exceed the limit of {limits.max_root_fields}."
                )
            if cost.total > limits.max_fields:
                # Also the bound of graphql-core's OverlappingFieldsCanBeMerged, which
                # compares same-named fields pairwise: 990 `id`s cost it 150 ms.
                self.report(node, f"{cost.total} fields exceed the limit of {limits.max_fields}.")

        def report(self, node: OperationDefinitionNode, message: str) -> None:
            self.report_error(GraphQLError(message, node))

    rules: list[type[ASTValidationRule]] = [QueryCostRule]
    if not limits.introspection:
        rules.append(NoSchemaIntrospectionCustomRule)
    return rules


@dataclass(frozen=True, slots=True)
class Cost:
    """What a selection set amounts to once every fragment spread is expanded in place."""

    depth: int  # the deepest field nesting
    aliases: int  # aliased fields at every level, each expanded occurrence counted
    fields: int  # fields of this level, looking through inline fragments and spreads
    total: int  # fields at every level, each expanded occurrence counted

    def __add__(self, other: Cost) -> Cost:  # two selections side by side
        return Cost(
            max(self.depth, other.depth),
            self.aliases + other.aliases,
            self.fields + other.fields,
            self.total + other.total,
        )


NOTHING = Cost(0, 0, 0, 0)


class _Costs:
    """Costs of selection sets in one document, each fragment's computed once.

    Without the memo a chain of fragments that each spread the next twice costs 2^n
    walks for a document of n lines (issue 11: n=90, 3.5 KB, never finished). The walk
    recurses, which is safe: graphql-core's ``validate`` refuses a document nested more
    than 200 levels deep, through fragments too, before any rule sees it.
    """

    def __init__(self, context: ValidationContext) -> None:
        self._context = context
        self._fragments: dict[str, Cost] = {}
        self._open: set[str] = set()  # fragments being worked out: a spread here is a cycle

    def of(self, selections: SelectionSetNode | None) -> Cost:
        total = NOTHING
        if selections is None:
            return total
        for selection in selections.selections:
            if isinstance(selection, FieldNode):
                total += self._field(selection)
            elif isinstance(selection, InlineFragmentNode):
                total += self.of(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                total += self._fragment(selection.name.value)
        return total

    def _field(self, field: FieldNode) -> Cost:
        below = self.of(field.selection_set)
        alias = 1 if field.alias else 0
        if field.name.value in INTROSPECTION_ROOTS:
            # Only reachable where introspection is on (development); its own rule,
            # MaxIntrospectionDepthRule, bounds how deep it may go (GraphiQL's query
            # alone has more fields than any limit here should allow).
            return Cost(1, below.aliases + alias, 1, 1)
        return Cost(1 + below.depth, below.aliases + alias, 1, 1 + below.total)

    def _fragment(self, name: str) -> Cost:
        cost = self._fragments.get(name)
        if cost is not None:
            return cost
        fragment = self._context.get_fragment(name)
        if fragment is None or name in self._open:
            # Unknown fragments and cycles are reported by other rules (and the
            # document refused); counting them as nothing is enough to end the walk.
            return NOTHING
        self._open.add(name)
        cost = self._fragments[name] = self.of(fragment.selection_set)
        self._open.discard(name)
        return cost
