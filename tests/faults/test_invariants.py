"""The fault suite's checks can fail: each flags the broken promise it is for, on
answers made up here, and lets the same answers pass once the promise is kept."""

from __future__ import annotations

from tests.faults import invariants as inv
from tests.faults.load import Answer, Registrations, classify

T0 = 100.0


def answer(op: str = "me", sent: float = 1.0, took: float = 0.01, outcome: str = "ok",
           **more) -> Answer:  # fmt: skip
    return Answer(op, T0 + sent, T0 + sent + took, outcome, opened=T0, **more)


def marks(**more) -> inv.Marks:
    return inv.Marks(started=T0, fault=T0 + 2, returned=T0 + 4, **more)


def test_an_internal_error_or_a_5xx_is_flagged():
    assert inv.no_server_errors([answer(), answer(outcome="unavailable")], marks()) == []
    assert inv.no_server_errors([answer(outcome="internal")], marks())
    assert inv.no_server_errors([answer(outcome="http_5xx")], marks())


def test_busy_is_flagged():
    assert inv.no_busy([answer(op="login", outcome="busy")], marks())
    assert inv.no_busy([answer(op="login")], marks()) == []


def test_an_answer_past_the_bound_is_flagged_and_a_held_refusal_has_the_hold_more():
    assert inv.latency_bounded([answer(took=inv.ANSWER_BOUND_S + 0.1)], marks())
    assert inv.latency_bounded([answer(took=inv.ANSWER_BOUND_S - 0.1)], marks()) == []
    held = answer(op="login", outcome="busy", took=inv.ANSWER_BOUND_S + 1, retry_after_s=1.0)
    assert inv.latency_bounded([held], marks()) == []
    held.answered = held.sent + inv.REFUSAL_BOUND_S + 0.1
    assert inv.latency_bounded([held], marks())


def test_a_lost_request_is_flagged_unless_a_killed_worker_held_its_connection():
    lost = answer(sent=3.0, outcome="no_answer")
    assert inv.nothing_lost([lost], marks())
    assert inv.nothing_lost([lost], marks(kills=[(T0 + 2.9, T0 + 3.0)])) == []
    # A connection opened after the worker's death must be answered.
    lost.opened = T0 + 3.5
    assert inv.nothing_lost([lost], marks(kills=[(T0 + 2.9, T0 + 3.0)]))


def test_after_sigterm_only_connections_opened_later_may_go_unanswered():
    on_old = answer(sent=3.0, outcome="no_answer")
    assert inv.nothing_lost([on_old], marks(sigterm=T0 + 2.5))
    on_new = answer(sent=3.0, outcome="refused")
    on_new.opened = T0 + 3.0
    assert inv.nothing_lost([on_new], marks(sigterm=T0 + 2.5)) == []


def test_a_fault_nobody_saw_is_flagged():
    assert inv.fault_seen([answer(sent=3.0)], marks())
    assert inv.fault_seen([answer(sent=3.0, outcome="unavailable")], marks()) == []


def test_a_slow_first_success_after_the_return_is_flagged():
    slow = [answer(op="login", sent=4.0, took=inv.FIRST_SUCCESS_S + 0.2)]
    assert inv.first_success_soon(slow, marks(), "redis")
    # `me` is not a probe of Redis's return (it may be served without a write).
    assert inv.first_success_soon([answer(op="me", sent=4.1)], marks(), "redis")
    assert inv.first_success_soon([answer(op="renew", sent=4.1)], marks(), "redis") == []


def test_unavailable_once_the_store_has_been_back_a_second_is_flagged():
    assert inv.recovered([answer(sent=4.5, outcome="unavailable")], marks()) == []
    late = answer(sent=4 + inv.RECOVERED_AFTER_S + 0.1, outcome="unavailable")
    assert inv.recovered([late], marks())


def test_a_lost_session_is_flagged_unless_a_failover_dropped_its_write():
    unauthenticated = answer(outcome="other", codes=("UNAUTHENTICATED",), session_written=T0 + 3)
    assert inv.no_other_errors([unauthenticated], marks())
    assert inv.no_other_errors([unauthenticated], marks(writes_lost=[(T0 + 2, T0 + 3.5)])) == []
    assert inv.no_other_errors([unauthenticated], marks(writes_lost=[(T0 + 3.5, T0 + 4)]))


def test_users_must_match_the_registrations_answered_201():
    registrations = Registrations()
    for email, outcome in [("a@x.io", "ok"), ("b@x.io", "unavailable"), ("c@x.io", "no_answer")]:
        registrations.record(answer(op="register", outcome=outcome, email=email))
    assert inv.users_match(registrations, {"a@x.io"}) == []
    assert inv.users_match(registrations, {"a@x.io", "c@x.io"}) == []  # its answer was lost
    assert inv.users_match(registrations, set())  # a 201 without its user
    assert inv.users_match(registrations, {"a@x.io", "b@x.io"})  # a user without a 201
    assert inv.users_match(registrations, {"a@x.io", "z@x.io"})  # a user nobody registered
    # Refused as unavailable while the database went away: either way is right.
    registrations.doubt(registrations.answers.values(), [(T0, T0 + 5)])
    assert inv.users_match(registrations, {"a@x.io", "b@x.io"}) == []


def test_answers_are_classified_as_the_api_answers_them():
    busy = b'{"data":{"login":{"status":503,"errors":[{"path":"email","message":"busy"}]}}}'
    assert classify("login", 200, busy)[0] == "busy"
    down = b'{"data":null,"errors":[{"extensions":{"code":"SERVICE_UNAVAILABLE"}}]}'
    assert classify("me", 200, down)[0] == "unavailable"
    broken = b'{"data":null,"errors":[{"extensions":{"code":"INTERNAL_SERVER_ERROR"}}]}'
    assert classify("me", 200, broken)[0] == "internal"
    assert classify("me", 502, b"<html>bad gateway</html>")[0] == "http_5xx"
    assert classify("register", 200, b'{"data":{"register":{"status":201}}}')[0] == "ok"
    taken = b'{"data":{"register":{"status":401,"errors":[]}}}'
    assert classify("register", 200, taken)[0] == "other"
    assert classify("logout", 200, b'{"data":{"logout":true}}')[0] == "ok"
