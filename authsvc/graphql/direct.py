"""The direct path: the hot documents (``mutation { refresh }``, ``{ me { id email } }``,
``mutation { renew { … } }``) run without graphql-core's executor.

A document qualifies when, once parsed and validated by graphql-core, its one operation
selects one root field that takes no arguments, and below it only plain leaf fields
(scalars read from the resolver's dict, no arguments, no directives, no fragments).
Running such a document is: call the root operation with the request context, then read
and serialize the selected keys. graphql-core's executor spends more on setting up than
that (about 40 µs per request here, a tenth of a refresh).

Anything else, and any outcome that is not a plain success (the operation raised, a
value is null or does not serialize), is answered by graphql-core's executor itself,
which replays the outcome the operation already had instead of calling it again: errors
keep graphql-core's exact shape and a mutation never runs twice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    Undefined,
    get_nullable_type,
)

from authsvc.graphql.context import RequestContext
from authsvc.graphql.execution import executed
from authsvc.graphql.resolvers import ContextResolver


@dataclass(frozen=True, slots=True)
class Leaf:
    key: str  # in the response: the alias, or the field's name
    name: str  # in the resolver's dict
    serialize: Callable[[Any], Any]  # the scalar's coerce_output_value


class DirectOperation:
    """One qualifying document, ready to run with a request context."""

    def __init__(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        key: str,
        operation: ContextResolver,
        leaves: tuple[Leaf, ...] | None,
        serialize: Callable[[Any], Any] | None,
    ) -> None:
        self._schema = schema
        self._document = document
        self._key = key
        self._operation = operation
        self._leaves = leaves  # an object's selected fields, or None for a scalar root
        self._serialize = serialize  # a scalar root's, or None for an object root

    async def run(self, context: RequestContext) -> ExecutionResult:
        try:
            value = await self._operation(context)
        except Exception as error:
            return await self._replay(context, error, raised=True)
        try:
            data = self._complete(value)
        except Exception:  # graphql-core's replay reports it exactly
            data = None
        if data is None:
            return await self._replay(context, value, raised=False)
        return ExecutionResult({self._key: data})

    def _complete(self, value: Any) -> Any:
        """The serialized value, or None where graphql-core would report an error
        (every qualifying field is non-null)."""
        if self._leaves is None:
            assert self._serialize is not None
            serialized = self._serialize(value) if value is not None else None
            return None if serialized is Undefined else serialized
        if not isinstance(value, Mapping):
            return None
        out = {}
        for leaf in self._leaves:
            raw = value.get(leaf.name)
            serialized = leaf.serialize(raw) if raw is not None else None
            if serialized is None or serialized is Undefined:
                return None
            out[leaf.key] = serialized
        return out

    async def _replay(
        self, context: RequestContext, outcome: Any, *, raised: bool
    ) -> ExecutionResult:
        """graphql-core's answer for the outcome the operation already had."""

        def replay(next_: Any, root: Any, info: Any, **arguments: Any) -> Any:
            if info.path.prev is not None:  # below the root: graphql-core's own work
                return next_(root, info, **arguments)
            if raised:
                raise outcome
            return outcome

        return await executed(
            self._schema, self._document, context_value=context, middleware=[replay]
        )


def plan(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation: OperationDefinitionNode,
    operations: Mapping[str, Mapping[str, ContextResolver]],
) -> DirectOperation | None:
    """The direct path for a validated ``document`` whose only operation is
    ``operation``, or None when it does not qualify."""
    if len(document.definitions) != 1 or operation.directives or operation.variable_definitions:
        return None
    root_type = (
        schema.query_type if operation.operation is OperationType.QUERY else schema.mutation_type
    )
    if operation.operation is OperationType.SUBSCRIPTION or root_type is None:
        return None
    root = _only_plain_field(operation.selection_set.selections)
    if root is None:
        return None
    resolver = operations.get(root_type.name, {}).get(root.name.value)
    field = root_type.fields.get(root.name.value)
    if resolver is None or field is None or field.args:
        return None
    if not isinstance(field.type, GraphQLNonNull):
        return None
    key = _response_key(root)
    result_type = get_nullable_type(field.type)
    if isinstance(result_type, GraphQLScalarType):
        if root.selection_set is not None:
            return None
        return DirectOperation(
            schema, document, key, resolver, None, result_type.coerce_output_value
        )
    if not isinstance(result_type, GraphQLObjectType) or root.selection_set is None:
        return None
    leaves = _leaves(result_type, root.selection_set.selections)
    if leaves is None:
        return None
    return DirectOperation(schema, document, key, resolver, leaves, None)


def _leaves(object_type: GraphQLObjectType, selections: Any) -> tuple[Leaf, ...] | None:
    leaves: list[Leaf] = []
    for node in selections:
        selection = _plain_field(node)
        if selection is None:
            return None
        field = object_type.fields.get(selection.name.value)  # None for __typename
        if field is None or field.resolve is not None or not isinstance(field.type, GraphQLNonNull):
            return None
        leaf_type = get_nullable_type(field.type)
        if not isinstance(leaf_type, GraphQLScalarType) or selection.selection_set is not None:
            return None
        serialize = leaf_type.coerce_output_value
        leaves.append(Leaf(_response_key(selection), selection.name.value, serialize))
    if len({leaf.key for leaf in leaves}) != len(leaves):
        return None  # the same key twice: graphql-core merges them; let it
    return tuple(leaves)


def _only_plain_field(selections: Any) -> FieldNode | None:
    return _plain_field(selections[0]) if len(selections) == 1 else None


def _plain_field(node: Any) -> FieldNode | None:
    """``node`` if it is a field with no arguments and no directives (no fragment)."""
    if not isinstance(node, FieldNode) or node.directives or node.arguments:
        return None
    return node


def _response_key(field: FieldNode) -> str:
    return field.alias.value if field.alias else field.name.value
