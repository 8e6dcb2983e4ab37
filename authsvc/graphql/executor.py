"""Parse, validate (cached per query string) and execute GraphQL requests."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import orjson
from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    get_operation_ast,
    parse,
    specified_rules,
    validate,
)

from authsvc.graphql.context import RequestContext
from authsvc.graphql.direct import DirectOperation, plan
from authsvc.graphql.errors import format_errors
from authsvc.graphql.execution import executed
from authsvc.graphql.limits import QueryLimits, limit_rules
from authsvc.graphql.resolvers import OPERATIONS


class MutationOverGet(Exception):
    """A mutation was sent with GET, which must not change state (HTTP 405)."""


@dataclass(frozen=True, slots=True)
class Response:
    """An HTTP status and a JSON-ready body, plus what the access log reports."""

    status: int
    body: dict[str, Any]
    operation: str
    outcome: str


@dataclass(frozen=True, slots=True)
class PreparedOperation:
    """What a document's only operation needs per request, worked out once."""

    node: OperationDefinitionNode
    label: str  # for the access log: the root fields called
    direct: DirectOperation | None


@dataclass(frozen=True, slots=True)
class Prepared:
    """A parsed and validated document (``errors`` empty), or why it is not."""

    document: DocumentNode | None
    errors: list[GraphQLError]
    only_operation: PreparedOperation | None = None  # documents of one operation


#: The cache is bounded by the tokens of the documents it keeps, not only by their
#: count or length: a syntax tree holds every token of its document (about 650 bytes
#: each), so 512 dense 2 KB documents of 1,000 tokens grew a worker by 330 MB (the red
#: team). The hot documents are a few dozen tokens; one of more than
#: MAX_CACHED_DOCUMENT_TOKENS is prepared every time (linear, bounded by the limits).
MAX_CACHED_TOKENS = 16_384  # about 10 MB of syntax trees per worker at most
MAX_CACHED_DOCUMENT_TOKENS = 256


class DocumentCache:
    """Validated documents by query string, least recently used out first; at most
    DOCUMENT_CACHE_SIZE of them and MAX_CACHED_TOKENS tokens in all.

    Parsing and validation cost 1-2 ms for a small mutation, executing it 0.1 ms; the
    same few query strings arrive again and again.
    """

    def __init__(self, schema: GraphQLSchema, size: int, limits: QueryLimits) -> None:
        self._schema = schema
        self._size = size
        self._limits = limits
        self._limit_rules = limit_rules(limits)
        self._entries: OrderedDict[str, tuple[Prepared, int]] = OrderedDict()
        self._tokens = 0  # of the documents kept

    def get(self, query: str) -> Prepared:
        entry = self._entries.get(query)
        if entry is not None:
            self._entries.move_to_end(query)
            return entry[0]
        prepared, tokens = self._prepare(query)
        if self._size and tokens <= MAX_CACHED_DOCUMENT_TOKENS:
            self._entries[query] = (prepared, tokens)
            self._tokens += tokens
            while len(self._entries) > self._size or self._tokens > MAX_CACHED_TOKENS:
                self._tokens -= self._entries.popitem(last=False)[1][1]
        return prepared

    def _prepare(self, query: str) -> tuple[Prepared, int]:
        """The document prepared, and how many tokens its syntax tree holds."""
        try:
            document = parse(query, max_tokens=self._limits.max_tokens)
        except GraphQLError as error:
            return Prepared(None, [error]), 0  # no tree is kept, only the error
        tokens = _token_count(document)
        # The limits first: they are linear in the document, while one standard rule
        # (OverlappingFieldsCanBeMerged) compares same-named siblings pairwise.
        for rules in (self._limit_rules, specified_rules):
            errors = validate(
                self._schema, document, rules=rules, hide_suggestions=not self._limits.suggestions
            )
            if errors:
                break
        if errors:  # they name nodes of the tree: it is kept as long as they are
            return Prepared(None, list(errors)), tokens
        operation = get_operation_ast(document)
        if operation is None:  # several operations: chosen per request by name
            return Prepared(document, []), tokens
        direct = plan(self._schema, document, operation, OPERATIONS)
        prepared = PreparedOperation(operation, _root_fields(operation), direct)
        return Prepared(document, [], prepared), tokens


def _token_count(document: DocumentNode) -> int:
    """The tokens of a parsed document (its tree keeps them all, linked)."""
    count, token = 0, document.loc.start_token if document.loc else None
    while token is not None:
        count += 1
        token = token.next
    return count


class GraphQLExecutor:
    def __init__(self, schema: GraphQLSchema, cache_size: int, limits: QueryLimits) -> None:
        self._schema = schema
        self._documents = DocumentCache(schema, cache_size, limits)
        self._max_variables_bytes = limits.max_variables_bytes

    async def run(
        self,
        query: str,
        variables: dict[str, Any] | None,
        operation_name: str | None,
        context: RequestContext,
        *,
        allow_mutation: bool,
    ) -> Response:
        """Execute one request. Raises MutationOverGet when ``allow_mutation`` is False
        and the operation is a mutation."""
        prepared = self._documents.get(query)
        document, errors = prepared.document, prepared.errors
        if document is not None and variables:
            size = len(orjson.dumps(variables))
            if size > self._max_variables_bytes:
                limit = self._max_variables_bytes
                document = None
                errors = [GraphQLError(f"Variables of {size} bytes exceed the limit of {limit}.")]
        if document is None:
            code = (
                "GRAPHQL_PARSE_FAILED" if _is_syntax_error(errors) else "GRAPHQL_VALIDATION_FAILED"
            )
            body = {"errors": format_errors(errors, context.request_id, code)}
            return Response(400, body, operation_name or "-", code)
        only = prepared.only_operation
        if only is not None and operation_name in (None, _name(only.node)):
            operation: OperationDefinitionNode | None = only.node
            label, direct = only.label, only.direct
        else:
            operation = get_operation_ast(document, operation_name)
            label, direct = _root_fields(operation), None
        is_query = operation is None or operation.operation is OperationType.QUERY
        if not is_query and not allow_mutation:
            raise MutationOverGet()
        # The access log names the root fields called: what a client named its
        # operation says less, and clients often name none.
        label = label or operation_name or "-"
        if direct is not None:
            result = await direct.run(context)
        else:
            result = await executed(
                self._schema,
                document,
                context_value=context,
                variable_values=variables,
                operation_name=operation_name,
            )
        return self._respond(result, context, label)

    @staticmethod
    def _respond(result: ExecutionResult, context: RequestContext, label: str) -> Response:
        if not result.errors:
            return Response(200, {"data": result.data}, label, "ok")
        if result.data is None and all(e.path is None for e in result.errors):
            # A request error, not a field error: nothing ran (bad variables, unknown
            # operation name), so the request itself is at fault.
            body = {"errors": format_errors(result.errors, context.request_id, "BAD_USER_INPUT")}
            return Response(400, body, label, "BAD_USER_INPUT")
        for error in result.errors:  # a rate limit raised as a GraphQL error
            context.hints.retry_after(getattr(error.original_error, "retry_after_s", None))
        errors = format_errors(result.errors, context.request_id)
        codes = sorted({e.get("extensions", {}).get("code", "ERROR") for e in errors})
        return Response(200, {"errors": errors, "data": result.data}, label, ",".join(codes))


def _is_syntax_error(errors: list[GraphQLError]) -> bool:
    return any(error.message.startswith("Syntax Error") for error in errors)


def _name(operation: OperationDefinitionNode) -> str | None:
    return operation.name.value if operation.name else None


def _root_fields(operation: OperationDefinitionNode | None) -> str:
    if operation is None:
        return ""
    selections = operation.selection_set.selections
    return "+".join(sel.name.value for sel in selections if isinstance(sel, FieldNode))
