"""The document cache keeps the hot, short documents, and is bounded by the tokens of
what it keeps: cached refused documents grew a worker by 190 MB (60 KB strings) and
then by 330 MB (dense 2 KB lists of 1,000 tokens), in the red team's runs (issue 11)."""

from __future__ import annotations

from graphql import build_schema

from authsvc.graphql.executor import MAX_CACHED_DOCUMENT_TOKENS, MAX_CACHED_TOKENS, DocumentCache
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


def cache() -> DocumentCache:
    return DocumentCache(build_schema(load_sdl()), 512, LIMITS)


def test_short_documents_are_cached_and_dense_ones_prepared_each_time():
    documents = cache()
    short = "mutation { refresh }"
    assert documents.get(short) is documents.get(short)
    # The re-check's shape: under 2 KB, about 970 tokens, refused.
    dense = 'mutation { login(email: "a", password: [' + "1 " * 960 + "]) { status } }"
    assert len(dense) < 2048
    first, second = documents.get(dense), documents.get(dense)
    assert first.errors and second.errors
    assert first is not second  # not kept
    huge = '{ me { id @skip(if: "' + "x" * 60_000 + '") } }'  # few tokens, one huge string
    assert documents.get(huge).errors
    assert documents.get(short) is documents.get(short)


def test_the_tokens_kept_stay_within_the_budget():
    documents = cache()
    # Distinct documents just under the per-document bound, more than the budget holds.
    width = MAX_CACHED_DOCUMENT_TOKENS // 4 - 5
    kept = [
        "{ me { " + " ".join(f"a{i}_{n}: id" for n in range(width)) + " } }" for i in range(200)
    ]
    for query in kept:
        documents.get(query)
    assert documents._tokens <= MAX_CACHED_TOKENS
    assert len(documents._entries) < 200  # the oldest went
    assert documents.get(kept[-1]) is documents.get(kept[-1])  # the newest stayed
