"""Login clients that honour Retry-After, for the bench's flood scenario: each on its own
keep-alive connection logs in, waits the seconds of Retry-After after a busy or
rate-limited answer and tries again, and pauses a second after each login. Each login
is timed from its first try to its tokens, retries included: that is what a user waits.

wrk measures single requests and shares a thread's waits among its connections, so it
cannot tell how long a login took; these few clients are cheap in Python.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import dataclass, field

QUERY = (
    "mutation($e: String!, $p: String!) "
    "{ login(email: $e, password: $p) { status errors { message } } }"
)
PAUSE_S = 1.0  # between a client's logins: a user logs in, then works
SOURCE = "127.0.0.2"


@dataclass
class PoliteRun:
    seconds: float
    login_s: list[float] = field(default_factory=list)  # each login, retries included
    unfinished_s: list[float] = field(default_factory=list)  # still retrying at the end
    attempts: int = 0
    refused: int = 0  # busy or rate limited, then retried after Retry-After
    errors: int = 0

    def percentile(self, share: float) -> float:
        """Of every login's time, the unfinished ones' time so far included (at least
        that long), so that a client that never logs in cannot look fast."""
        times = sorted(self.login_s + self.unfinished_s)
        if not times:
            return 0.0
        return times[min(len(times) - 1, int(share * len(times)))]


def run_polite(port: int, emails: list[str], password: str, connections: int,
               seconds: float) -> PoliteRun:  # fmt: skip
    run = PoliteRun(seconds)
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client(index: int) -> None:
        # From another loopback address, as another client is: on the flood's own
        # address the first login of each connection is judged by the flood's record.
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30,
                                          source_address=(SOURCE, 0))  # fmt: skip
        turn = index
        while time.monotonic() < stop_at:
            email = emails[turn % len(emails)]
            turn += connections
            body = json.dumps({"query": QUERY, "variables": {"e": email, "p": password}})
            started = time.monotonic()
            done = False
            while not done and time.monotonic() < stop_at:
                try:
                    conn.request("POST", "/graphql", body, {"Content-Type": "application/json"})
                    response = conn.getresponse()
                    answer = json.loads(response.read())
                    status = answer["data"]["login"]["status"]
                except (OSError, http.client.HTTPException, ValueError, KeyError, TypeError):
                    conn.close()  # reconnects on the next request
                    with lock:
                        run.errors += 1
                    break
                with lock:
                    run.attempts += 1
                if status == 200:
                    done = True
                    with lock:
                        run.login_s.append(time.monotonic() - started)
                elif status in (429, 503):
                    with lock:
                        run.refused += 1
                    time.sleep(float(response.getheader("Retry-After") or 1))
                else:
                    with lock:
                        run.errors += 1
                    break
            if not done and time.monotonic() >= stop_at:
                with lock:
                    run.unfinished_s.append(stop_at - started)
            time.sleep(max(0.0, min(PAUSE_S, stop_at - time.monotonic())))
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return run
