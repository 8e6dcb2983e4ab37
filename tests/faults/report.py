"""The table of counts per scenario, printed at the end of the run (conftest.py) and
written as JSON beside pytest's temporary files."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from tests.faults.load import Answer


@dataclass
class Row:
    scenario: str
    requests: int = 0  # sent (a connection that could not be opened sent nothing)
    ok: int = 0
    unavailable: int = 0
    busy: int = 0
    other: int = 0
    server_errors: int = 0  # HTTP 5xx other than BUSY, and INTERNAL_SERVER_ERROR
    lost: int = 0  # no answer, or no connection, outside what a kill or SIGTERM excuses
    excused: int = 0  # lost on a killed worker's connection, or refused after SIGTERM
    #: UNAUTHENTICATED for sessions whose last write Redis lost in a failover (counted
    #: in ``other`` too).
    writes_lost: int = 0
    max_latency_s: float = 0.0  # of every answer but a refusal (held on purpose)
    max_refusal_s: float = 0.0  # of a refusal carrying Retry-After (BUSY, RATE_LIMITED)
    first_ok_s: float | None = None  # after the store's return (or the worker's death)
    violations: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, scenario: str, answers: list[Answer], lost: int, excused: int) -> Row:
        sent = [a for a in answers if a.outcome != "refused"]
        answered = [a for a in answers if a.answered_at_all]
        outcomes = ("ok", "unavailable", "busy", "other", "internal", "http_5xx")
        count = {o: sum(1 for a in answers if a.outcome == o) for o in outcomes}
        return cls(
            scenario,
            requests=len(sent),
            ok=count["ok"],
            unavailable=count["unavailable"],
            busy=count["busy"],
            other=count["other"],
            server_errors=count["internal"] + count["http_5xx"],
            lost=lost,
            excused=excused,
            max_latency_s=max(
                (a.latency_s for a in answered if a.retry_after_s is None), default=0.0
            ),
            max_refusal_s=max(
                (a.latency_s for a in answered if a.retry_after_s is not None), default=0.0
            ),
        )


ROWS: list[Row] = []

COLUMNS = [
    ("scenario", 44), ("requests", 8), ("ok", 6), ("unavail", 7), ("busy", 5),
    ("other", 5), ("w.lost", 6), ("5xx/ISE", 7), ("lost", 4), ("excused", 7),
    ("max lat", 7), ("max ref", 7), ("1st ok", 6), ("verdict", 0),
]  # fmt: skip


def table(rows: list[Row]) -> list[str]:
    lines = [" ".join(name.ljust(width) for name, width in COLUMNS).rstrip()]
    for r in rows:
        first = "-" if r.first_ok_s is None else f"{r.first_ok_s:.2f}s"
        verdict = "ok" if not r.violations else f"FAILED ({len(r.violations)})"
        cells = [r.scenario, r.requests, r.ok, r.unavailable, r.busy, r.other,
                 r.writes_lost, r.server_errors, r.lost, r.excused, f"{r.max_latency_s:.2f}s",
                 f"{r.max_refusal_s:.2f}s" if r.busy else "-", first, verdict]  # fmt: skip
        lines.append(" ".join(str(c).ljust(w) for c, (_, w) in zip(cells, COLUMNS, strict=True)))
    failed = [r for r in rows if r.violations]
    for r in failed:
        lines.append(f"{r.scenario}:")
        lines.extend(f"  - {v}" for v in r.violations)
    return lines


def as_json(rows: list[Row]) -> list[dict[str, object]]:
    return [asdict(r) for r in rows]
