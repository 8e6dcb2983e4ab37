"""The promises every fault scenario checks against the answers its load recorded.

Each check returns the violations it found, one line each with examples, so that a
scenario reports every broken promise at once instead of the first.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from tests.faults.environment import REFUSAL_HOLD_MAX_S, STORE_TIMEOUT_S
from tests.faults.load import Answer, Registrations

#: How much later than STORE_TIMEOUT_S an answer may come. A call to a dead or frozen
#: store is answered at STORE_TIMEOUT_S, plus the work around it; on this two-core
#: machine the two workers share the cores with Redis, MariaDB and the 20 client
#: threads (whose own clock readings wait for the GIL), and answers without any fault
#: already take up to a few hundred milliseconds at the worst moment. 1.5 s is above
#: what that noise reaches and still well below a second timed-out call (2 x 1 s +
#: noise), which is what a store call that is not bounded would show.
LATENCY_MARGIN_S = 1.5
#: The latency bound of every answer but a refusal.
ANSWER_BOUND_S = STORE_TIMEOUT_S + LATENCY_MARGIN_S
#: A refusal carrying Retry-After (BUSY, RATE_LIMITED) is held on purpose before it is
#: sent (0.5 s, up to REFUSAL_HOLD_MAX_S for a client that asked again too soon:
#: graphql/pacing.py), after the store calls that decided it: its bound adds the hold.
REFUSAL_BOUND_S = ANSWER_BOUND_S + REFUSAL_HOLD_MAX_S
#: The first success after a store returns comes within this (measured from the moment
#: the restored server accepts connections).
FIRST_SUCCESS_S = 1.0
#: From this long after the store's return on, nothing is answered SERVICE_UNAVAILABLE
#: (a pooled connection the restart closed must not fail a request: issue 12, item 3).
RECOVERED_AFTER_S = 1.0

#: Operations that certainly need the store to write (not served from a cache), the
#: probes of "the first success after the store's return".
PROBES = {
    "redis": frozenset({"login", "renew"}),  # a session written
    "database": frozenset({"register"}),  # a user inserted
    None: frozenset({"register", "login", "refresh", "renew", "me", "logout"}),
}


@dataclass
class Marks:
    """The moments of a scenario (time.monotonic())."""

    started: float
    fault: float | None = None  # the fault was injected
    returned: float | None = None  # the store accepts connections again (or the fault ended)
    #: (signal sent, death seen) of each worker killed with SIGKILL.
    kills: list[tuple[float, float]] = field(default_factory=list)
    #: Windows in which a database went away (stopped or killed): a registration in
    #: flight then may be stored though its answer said otherwise.
    database_gone: list[tuple[float, float]] = field(default_factory=list)
    sigterm: float | None = None  # the service was sent SIGTERM
    #: Windows in which Redis acknowledged writes it may lose: a Sentinel failover
    #: (a write to the old master after the replica's promotion, before its demotion,
    #: is dropped when it resyncs) or a master killed before it replicated the last
    #: writes. Replication is asynchronous: Redis promises no more.
    writes_lost: list[tuple[float, float]] = field(default_factory=list)


def _examples(answers: list[Answer], marks: Marks, n: int = 3) -> str:
    shown = [
        f"{a.op} sent at +{a.sent - marks.started:.2f}s: {a.outcome} "
        f"after {a.latency_s:.2f}s {a.detail or ','.join(a.codes)}".strip()
        + (
            ""
            if a.session_written is None
            else f" (session written at +{a.session_written - marks.started:.2f}s)"
        )
        for a in answers[:n]
    ]
    return "; ".join(shown)


def no_server_errors(answers: list[Answer], marks: Marks) -> list[str]:
    bad = [a for a in answers if a.outcome in ("internal", "http_5xx")]
    if not bad:
        return []
    return [f"{len(bad)} answers were a 5xx or INTERNAL_SERVER_ERROR: {_examples(bad, marks)}"]


def no_busy(answers: list[Answer], marks: Marks) -> list[str]:
    """BCRYPT_ROUNDS=4 is about a millisecond a hash: busy is never the right answer
    here (issue 12, item 4)."""
    bad = [a for a in answers if a.outcome == "busy"]
    if not bad:
        return []
    ops = sorted({a.op for a in bad})
    return [f"{len(bad)} answers were BUSY at BCRYPT_ROUNDS=4 ({', '.join(ops)}): "
            f"{_examples(bad, marks)}"]  # fmt: skip


def session_lost_with_a_write(answer: Answer, marks: Marks) -> bool:
    """UNAUTHENTICATED for a session last written while Redis could lose writes."""
    written = answer.session_written
    return (
        answer.outcome == "other"
        and answer.codes == ("UNAUTHENTICATED",)
        and written is not None
        and any(start <= written <= end for start, end in marks.writes_lost)
    )


def no_other_errors(answers: list[Answer], marks: Marks) -> list[str]:
    """A client that keeps the rules never sees UNAUTHENTICATED or a refusal: if it
    does, a fault lost or broke its session (unless Redis lost the write that made
    it, which only a failover may: Marks.writes_lost)."""
    bad = [a for a in answers if a.outcome == "other" and not session_lost_with_a_write(a, marks)]
    if not bad:
        return []
    return [f"{len(bad)} unexpected answers: {_examples(bad, marks)}"]


def latency_bounded(answers: list[Answer], marks: Marks) -> list[str]:
    late = [
        a for a in answers
        if a.answered_at_all
        and a.latency_s > (REFUSAL_BOUND_S if a.retry_after_s is not None else ANSWER_BOUND_S)
    ]  # fmt: skip
    if not late:
        return []
    late.sort(key=lambda a: -a.latency_s)
    return [f"{len(late)} answers later than {ANSWER_BOUND_S} s (refusals {REFUSAL_BOUND_S} s):"
            f" {_examples(late, marks)}"]  # fmt: skip


def excused_loss(answer: Answer, marks: Marks) -> bool:
    """A request may go unanswered only on a connection a killed worker held (opened
    before its death was seen, failed after the kill), or on a connection opened once
    SIGTERM was sent (the listeners close: those clients must go elsewhere)."""
    for killed, dead in marks.kills:
        if answer.opened <= dead and answer.answered >= killed:
            return True
    return marks.sigterm is not None and answer.opened >= marks.sigterm


def nothing_lost(answers: list[Answer], marks: Marks) -> list[str]:
    lost = [a for a in answers if not a.answered_at_all and not excused_loss(a, marks)]
    if not lost:
        return []
    kills = ", ".join(
        f"+{killed - marks.started:.2f}s (death seen +{dead - marks.started:.2f}s)"
        for killed, dead in marks.kills
    )  # for whoever reads a failure: when the only excused losses could happen
    return [f"{len(lost)} requests got no answer: {_examples(lost, marks)}"
            + (f"; workers killed at {kills}" if kills else "")]  # fmt: skip


def fault_seen(answers: list[Answer], marks: Marks) -> list[str]:
    """The fault took effect: something was answered SERVICE_UNAVAILABLE while it
    lasted (otherwise the scenario proves nothing)."""
    assert marks.fault is not None and marks.returned is not None
    fault, returned = marks.fault, marks.returned
    if any(a.outcome == "unavailable" and fault <= a.sent <= returned for a in answers):
        return []
    return ["no SERVICE_UNAVAILABLE during the fault: the fault did not take effect"]


def first_success_s(answers: list[Answer], marks: Marks, store: str | None) -> float | None:
    """Seconds from the return to the first success of an operation that needs the
    store; None if there was none."""
    assert marks.returned is not None
    returned = marks.returned
    probes = PROBES[store]
    times = [a.answered for a in answers
             if a.outcome == "ok" and a.op in probes and a.answered >= returned]  # fmt: skip
    return min(times) - returned if times else None


def first_success_soon(answers: list[Answer], marks: Marks, store: str | None) -> list[str]:
    seconds = first_success_s(answers, marks, store)
    probes = "/".join(sorted(PROBES[store]))
    if seconds is None:
        return [f"no {probes} succeeded after the store returned"]
    if seconds > FIRST_SUCCESS_S:
        return [f"the first {probes} success came {seconds:.2f} s after the store returned "
                f"(bound {FIRST_SUCCESS_S} s)"]  # fmt: skip
    return []


def recovered(answers: list[Answer], marks: Marks) -> list[str]:
    assert marks.returned is not None
    since = marks.returned + RECOVERED_AFTER_S
    late = [a for a in answers if a.outcome == "unavailable" and a.sent >= since]
    if not late:
        return []
    return [f"{len(late)} SERVICE_UNAVAILABLE sent {RECOVERED_AFTER_S} s or more after the "
            f"store returned: {_examples(late, marks)}"]  # fmt: skip


def users_match(registrations: Registrations, stored: set[str]) -> list[str]:
    """Every registration answered 201 is a user, and every user had one (or was in
    flight when its database or worker died: in doubt, either way is right)."""
    created = registrations.created()
    known = set(registrations.answers)
    problems = []
    missing = created - stored
    if missing:
        problems.append(f"{len(missing)} registrations answered 201 have no user: "
                        f"{sorted(missing)[:3]}")  # fmt: skip
    unanswered = {e for e in stored - created if e in known} - registrations.in_doubt
    if unanswered:
        examples = [f"{e} ({registrations.answers[e].outcome})" for e in sorted(unanswered)[:3]]
        problems.append(f"{len(unanswered)} users exist whose registration was not answered 201:"
                        f" {examples}")  # fmt: skip
    strangers = stored - known
    if strangers:
        problems.append(f"{len(strangers)} users nobody registered: {sorted(strangers)[:3]}")
    return problems


def all_of(*checks: Iterable[str]) -> list[str]:
    return [violation for check in checks for violation in check]
