"""One fault scenario: the load runs before, during and after a fault; sessions made
before it and a race of renewals during it are checked after it; every invariant is
judged, and the scenario's row goes into the report whether it passed or not.

    with Scenario(env, "Redis kill -9", store="redis") as run:
        run.fault(env.redis.kill)
        run.hold()
        run.restore(env.redis.start)
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from types import TracebackType

from tests.faults import invariants as inv
from tests.faults.bursts import Burst, RenewRace, Session, jti, pool_burst
from tests.faults.environment import WORKERS, FaultEnv, wait_until
from tests.faults.load import Answer, Load, new_email
from tests.faults.report import ROWS, Row
from tests.helpers import PASSWORD

#: Load before the fault, the fault itself (past STORE_TIMEOUT_S, so that calls time
#: out), and load after the store's return: short, for a suite of a few minutes. At
#: the load's pace (several hundred answers a second) a scenario still sends some
#: thousands of requests, and the load after the return runs past the burst and past
#: RECOVERED_AFTER_S, so that inv.recovered has answers of both to judge.
BEFORE_S = 1.0
FAULT_S = 2.5
AFTER_S = 1.5
#: Sessions made before the fault that must work after it.
SESSIONS_BEFORE = 4
#: The race of renewals starts this long into the fault.
RACE_DELAY_S = 0.5
#: A burst after the return comes this long after it: inside the time in which
#: nothing may be SERVICE_UNAVAILABLE any more (inv.RECOVERED_AFTER_S).
BURST_AFTER_RETURN_S = inv.RECOVERED_AFTER_S + 0.2
#: After the fault, the checks ask again while answered SERVICE_UNAVAILABLE for this
#: long: a stale connection is item 3's check (inv.recovered), not theirs.
SETTLE_S = 3.0


class Scenario:
    """``store``: the store the fault takes away ("redis", "database"; None: none, a
    worker or the whole service). ``expect_outage``: the fault must be seen as
    SERVICE_UNAVAILABLE. ``service_stays``: the service is still running at the end
    (every scenario but SIGTERM's)."""

    def __init__(
        self,
        env: FaultEnv,
        name: str,
        *,
        store: str | None,
        expect_outage: bool = True,
        race: bool = True,
        service_stays: bool = True,
        after_s: float = AFTER_S,
    ) -> None:
        self.env = env
        self.name = name
        self.store = store
        self.expect_outage = expect_outage
        self.race: RenewRace | None = None
        self._race_wanted = race
        self.service_stays = service_stays
        self.after_s = after_s
        self.marks = inv.Marks(started=time.monotonic())
        self.sessions_before: list[Session] = []
        self.load: Load | None = None
        self.bursts: list[Burst] = []
        self._frozen_since: float | None = None

    # --- the scenario's steps ---------------------------------------------------------

    def __enter__(self) -> Scenario:
        if self.service_stays:
            self.sessions_before = [self.env.new_session() for _ in range(SESSIONS_BEFORE)]
        if self._race_wanted:
            self.race = RenewRace(self.env.service.port, self.env.new_session().refresh)
        self.marks.started = time.monotonic()
        self.load = Load(self.env.pool).start()
        time.sleep(BEFORE_S / 2)
        if self.sessions_before:  # grow the pools: the fault will leave them stale
            self._burst().run()
        time.sleep(BEFORE_S / 2)
        return self

    def _burst(self) -> Burst:
        burst = pool_burst(self.env.service.port, self.sessions_before)
        self.bursts.append(burst)
        return burst

    def fault(
        self, action=None, *, database_gone: bool = False, database_frozen: bool = False
    ) -> None:
        """Inject the fault (``action``); the race of renewals starts a little later.
        ``database_gone``: the database went away now (what was in flight may or may
        not be stored); ``database_frozen``: it holds what it was sent until the
        restore (everything sent until then may or may not be stored)."""
        started = time.monotonic()
        if action is not None:
            action()
        self.marks.fault = started
        if database_gone:
            self.marks.database_gone.append((started, time.monotonic()))
        if database_frozen:
            self._frozen_since = started
        if self.race is not None:
            self.race.start(RACE_DELAY_S)

    def hold(self, until_s: float = FAULT_S) -> None:
        """Let the fault last ``until_s`` from its start."""
        assert self.marks.fault is not None
        time.sleep(max(0.0, self.marks.fault + until_s - time.monotonic()))

    def kill_worker(self) -> None:
        """SIGKILL one worker; returns once its death is seen and a replacement runs."""
        victim = self.env.workers()[0]
        killed = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        dead = wait_until(lambda: not _alive(victim), 5, f"worker {victim} died")
        self.marks.kills.append((killed, dead))
        if self.marks.fault is None:
            self.marks.fault = killed
            if self.race is not None:
                self.race.start(RACE_DELAY_S)
        wait_until(
            lambda: len(self.env.workers()) == WORKERS and victim not in self.env.workers(),
            15, "a replacement worker started",
        )  # fmt: skip

    def restore(self, action=None, *, at: float | None = None) -> None:
        """End the fault (``action`` returns once the server accepts connections); the
        moment it ended is now, or ``at``."""
        if action is not None:
            action()
        self.marks.returned = time.monotonic() if at is None else at
        if self._frozen_since is not None:
            self.marks.database_gone.append((self._frozen_since, self.marks.returned))

    def sigterm(self) -> int:
        """SIGTERM the service under load; its exit code."""
        self.marks.sigterm = self.marks.fault = time.monotonic()
        code = self.env.service.terminate()
        self.marks.returned = time.monotonic()
        return code

    # --- judging ----------------------------------------------------------------------

    def _stop_load(self) -> list[Answer]:
        """Stop the load and the race; every answer of them and of the bursts, with
        the registrations among them recorded."""
        assert self.load is not None
        answers = self.load.stop()
        if self.race is not None:
            self.race.join()
        for extra in [*self.bursts, *([self.race] if self.race else [])]:
            answers += extra.answers
            for answer in extra.answers:
                self.env.registrations.record(answer)
        return answers

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self.load is not None
        if kind is not None:  # the scenario itself broke: still stop and report it
            answers = self._stop_load()
            # Nothing is known of when what went away: any refused one may be stored.
            self.env.registrations.doubt(answers, [(self.marks.started, time.monotonic())])
            ROWS.append(Row(self.name, violations=[f"the scenario broke: {exc!r}"]))
            return
        assert self.marks.returned is not None, "the scenario never ended its fault"
        ends = self.marks.returned + self.after_s
        if self.service_stays:  # reach every pooled connection, stale ones too
            time.sleep(max(0.0, self.marks.returned + BURST_AFTER_RETURN_S - time.monotonic()))
            self._burst().run()
        time.sleep(max(0.0, ends - time.monotonic()))
        answers = self._stop_load()
        answers.sort(key=lambda a: a.answered)
        self._keep(answers)
        violations = self._judge(answers)
        lost = [a for a in answers if not a.answered_at_all]
        excused = [a for a in lost if inv.excused_loss(a, self.marks)]
        row = Row.of(self.name, answers, len(lost) - len(excused), len(excused))
        row.writes_lost = sum(1 for a in answers if inv.session_lost_with_a_write(a, self.marks))
        if self.marks.returned is not None:
            row.first_ok_s = inv.first_success_s(answers, self.marks, self.store)
        row.violations = violations
        ROWS.append(row)
        assert not violations, f"{self.name}:\n  " + "\n  ".join(violations)

    def _keep(self, answers: list[Answer]) -> None:
        """Every answer as a JSON line beside the service's logs, times relative to the
        start of the load, for whoever reads a failure."""
        marks = self.marks
        slug = re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-")
        with (self.env.workdir / f"answers-{slug}.jsonl").open("w") as out:
            out.write(json.dumps({"marks": {k: _relative(v, marks.started)
                                            for k, v in vars(marks).items()}}) + "\n")  # fmt: skip
            for a in answers:
                line = {"op": a.op, "sent": round(a.sent - marks.started, 4),
                        "latency": round(a.latency_s, 4), "outcome": a.outcome,
                        "status": a.status, "codes": a.codes, "detail": a.detail,
                        "opened": round(a.opened - marks.started, 4),
                        "retry_after": a.retry_after_s, "email": a.email,
                        "session_written": _relative(a.session_written, marks.started)}  # fmt: skip
                out.write(json.dumps(line) + "\n")

    def _judge(self, answers: list[Answer]) -> list[str]:
        marks, env = self.marks, self.env
        violations = inv.all_of(
            self._with_log(inv.no_server_errors(answers, marks)),
            inv.latency_bounded(answers, marks),
            inv.nothing_lost(answers, marks),
            inv.no_busy(answers, marks),
            inv.no_other_errors(answers, marks),
        )
        assert marks.returned is not None
        if self.expect_outage:
            violations += inv.fault_seen(answers, marks)
        if self.service_stays:
            violations += inv.first_success_soon(answers, marks, self.store)
            violations += inv.recovered(answers, marks)
            violations += self._service_up()
            violations += self._sessions_before_work()
            violations += self._one_lineage()
        # Who was in flight when a database went: stored or not, both right. (Those a
        # killed worker never answered are in doubt already: they got no answer.)
        env.registrations.doubt(answers, marks.database_gone)
        try:
            violations += inv.users_match(env.registrations, env.user_emails())
        except Exception as exc:  # the database itself is not back: say so, go on
            violations.append(f"the users could not be read: {exc!r}")
        return violations

    def _with_log(self, violations: list[str]) -> list[str]:
        """A server error, with the service's own line about it (its exception)."""
        if violations:
            lines = [line for line in self.env.service.logs().splitlines()
                     if "unexpected error" in line]  # fmt: skip
            if lines:
                violations = [*violations, f"the service logged {len(lines)} unexpected "
                              f"errors, the first: {lines[0][-1500:]}"]  # fmt: skip
        return violations

    def _service_up(self) -> list[str]:
        env, problems = self.env, []
        if env.service.process.poll() is not None:
            return [f"the service exited with {env.service.process.returncode}"]
        try:
            wait_until(lambda: env.http_status("/readyz") == 200, 5, "/readyz 200")
        except AssertionError as exc:
            problems.append(str(exc))
        if env.http_status("/healthz") != 200:
            problems.append("/healthz is not 200")
        if len(env.workers()) != WORKERS:
            problems.append(f"{len(env.workers())} workers run, not {WORKERS}")
        email = new_email()
        credentials = {"email": email, "password": PASSWORD}
        registered = env.post("register", credentials, within_s=SETTLE_S)
        login = env.post("login", credentials, within_s=SETTLE_S)
        if registered.outcome != "ok" or login.outcome != "ok":
            problems.append(f"no login after the scenario: {registered.outcome} {login.outcome}"
                            f" {login.detail or login.codes}")  # fmt: skip
        return problems

    def _sessions_before_work(self) -> list[str]:
        broken = []
        for session in self.sessions_before:
            me = self.env.post("me", token=session.access, within_s=SETTLE_S)
            refreshed = self.env.post("refresh", token=session.refresh, within_s=SETTLE_S)
            if me.outcome != "ok" or refreshed.outcome != "ok":
                broken.append(f"me {me.outcome} {me.codes}, refresh {refreshed.outcome} "
                              f"{refreshed.codes}")  # fmt: skip
        if not broken:
            return []
        return [f"{len(broken)} of {len(self.sessions_before)} sessions made before the fault "
                f"no longer work: {broken[0]}"]  # fmt: skip

    def _one_lineage(self) -> list[str]:
        """At most one new lineage out of the race: every renewal that succeeded handed
        out the same child, and retrying the parent now (a client that lost its
        answer) gives that child too, which renews onward."""
        if self.race is None:
            return []
        children = self.race.children()
        if len(children) > 1:
            return [f"the renew race made {len(children)} lineages"]
        retry = self.env.post("renew", token=self.race.refresh, within_s=SETTLE_S)
        if retry.outcome != "ok":
            return [f"the race's parent no longer renews after the fault: {retry.outcome} "
                    f"{retry.codes} {retry.detail}"]  # fmt: skip
        child = retry.result["refreshToken"]
        if children and jti(child) not in children:
            return ["a retry of the race's parent made a second lineage"]
        onward = self.env.post("renew", token=child, within_s=SETTLE_S)
        if onward.outcome != "ok":
            return [f"the race's lineage does not renew onward: {onward.outcome} {onward.codes}"]
        return []


def _relative(value: object, start: float) -> object:
    if isinstance(value, float):
        return round(value - start, 4)
    if isinstance(value, list):
        return [_relative(v, start) for v in value]
    if isinstance(value, tuple):
        return tuple(_relative(v, start) for v in value)
    return value


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie not yet reaped counts as dead)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
