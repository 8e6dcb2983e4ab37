"""Each worker follows JWT_KEYS_DIR: `authsvc keys generate|rotate|remove` take effect in
every worker without a restart.

Once a second a worker stats the folder's few entries (a few microseconds, on the loop,
never on a request's path) and only when something changed reads the keys again, in a
thread: parsing a PEM (an RSA key above all) must not hold the loop. A file that is no
usable key (half copied in by hand) is passed over, as at a worker's start (signing.py);
a folder whose signing key or records cannot be read leaves the keys in use as they
are, says so once, and is tried again when it changes: a worker never stops serving
for it. `authsvc keys` itself writes every file atomically
(stores/keyfiles.py), so it never shows a reader half a file.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from authsvc.core.clock import Clock
from authsvc.core.keys import KeyConfigError, KeyRing
from authsvc.core.tokens import TokenCodec
from authsvc.settings import Settings
from authsvc.signing import load_access_ring
from authsvc.stores import keyfiles

log = logging.getLogger(__name__)

#: How often a worker looks at the folder.
RELOAD_INTERVAL_S = 1.0
#: Within this every worker uses a changed folder: a look's interval, the reading of
#: the keys (milliseconds), and a margin for a loop busy with requests.
FOLLOW_BOUND_S = 2


class KeyReload:
    """Swaps the access key ring of ``tokens`` when JWT_KEYS_DIR changes."""

    def __init__(
        self,
        settings: Settings,
        tokens: TokenCodec,
        clock: Clock,
        interval_s: float = RELOAD_INTERVAL_S,
    ) -> None:
        self._settings = settings
        self._tokens = tokens
        self._clock = clock
        self._folder = Path(settings.jwt_keys_dir)
        self._interval_s = interval_s
        #: None: the first look reads the folder again, so that a change between the
        #: ring's first loading and this start is not missed.
        self._seen: keyfiles.Fingerprint | None = None
        self._failed: keyfiles.Fingerprint | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def check(self) -> bool:
        """Look once; True if a new ring is in use."""
        seen = keyfiles.fingerprint(self._folder)
        if seen == self._seen or seen == self._failed:
            return False
        try:
            ring = await asyncio.to_thread(load_access_ring, self._settings, self._clock)
        except (KeyConfigError, ValueError, OSError) as exc:
            self._failed = seen
            log.warning("JWT_KEYS_DIR changed but cannot be read; keeping the keys in use: %s", exc)
            return False
        self._seen, self._failed = seen, None
        before = self._tokens.access.ring
        self._tokens.use_access_ring(ring)
        if _described(before) != _described(ring):
            log.info("access keys reloaded: %s signs; %d keys", ring.signing.kid, len(ring.keys))
        return True

    async def _run(self) -> None:
        while True:
            try:
                await self.check()
            except Exception:  # never end the loop: the next look tries again
                log.exception("looking at JWT_KEYS_DIR failed")
            await asyncio.sleep(self._interval_s)


def _described(ring: KeyRing) -> tuple[str | None, tuple[str | None, ...]]:
    return ring.signing.kid, tuple(key.kid for key in ring.keys)
