"""The document cache keeps the hot, short documents, and never a long one: a cache of
refused 60 KB documents grew a worker by 190 MB in 11 s (the red team, issue 11)."""

from __future__ import annotations

from graphql import build_schema

from authsvc.graphql.executor import MAX_CACHED_QUERY_CHARS, DocumentCache
from authsvc.graphql.limits import QueryLimits
from authsvc.graphql.schema import load_sdl

LIMITS = QueryLimits(
    max_depth=8,
    max_aliases=10,
    max_root_fields=10,
    max_fields=100,
    max_tokens=1000,
    max_variables_bytes=8192,
    introspection=False,
    suggestions=False,
)


def test_short_documents_are_cached_and_long_ones_prepared_each_time():
    cache = DocumentCache(build_schema(load_sdl()), 512, LIMITS)
    short = "mutation { refresh }"
    assert cache.get(short) is cache.get(short)
    # A refused document as the red team sent it: one huge string argument.
    long = '{ me { id @skip(if: "' + "x" * 60_000 + '") } }'
    assert len(long) > MAX_CACHED_QUERY_CHARS
    first, second = cache.get(long), cache.get(long)
    assert first.errors and second.errors
    assert first is not second
    assert cache.get(short) is cache.get(short)
