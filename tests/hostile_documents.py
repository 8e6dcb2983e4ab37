"""GraphQL documents that cost far more than they look, shared by the limit tests, the
end-to-end test and the fuzz strategies (issue 11: nested fragments froze a worker)."""

from __future__ import annotations


def nested_fragments(
    levels: int, spreads: int = 2, leaf: str = "id", *, inline: bool = False
) -> str:
    """``query { me { ...F0 } }`` where each ``F{i}`` spreads ``F{i+1}`` ``spreads``
    times (inside ``... on User { }`` when ``inline``) and ``F{levels}`` selects ``leaf``:
    ``spreads ** levels`` copies of ``leaf`` once expanded, from a document that grows
    linearly with ``levels``."""
    spread = "... on User {{ ...F{} }}" if inline else "...F{}"
    fragments = [
        f"fragment F{i} on User {{ {' '.join([spread.format(i + 1)] * spreads)} }}"
        for i in range(levels)
    ]
    fragments.append(f"fragment F{levels} on User {{ {leaf} }}")
    return "query { me { ...F0 } } " + " ".join(fragments)


#: The document of the report: 3.5 KB, 915 tokens, inside every default limit; without
#: a memo its checks walk 2^90 paths.
ISSUE_11_DOCUMENT = nested_fragments(90)
