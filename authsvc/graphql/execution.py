"""graphql-core's ``execute``, awaited: one ExecutionResult whatever the resolvers are."""

from __future__ import annotations

import inspect
from typing import Any

from graphql import DocumentNode, ExecutionResult, GraphQLSchema, execute


async def executed(
    schema: GraphQLSchema, document: DocumentNode, **options: Any
) -> ExecutionResult:
    """``execute(schema, document, **options)``, awaited when it returns an awaitable
    (async resolvers) and returned as is otherwise."""
    result = execute(schema, document, **options)
    if inspect.isawaitable(result):
        result = await result
    assert isinstance(result, ExecutionResult)
    return result
