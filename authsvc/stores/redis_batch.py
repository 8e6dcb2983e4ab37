"""Commands issued in the same event-loop turn go to Redis as one pipeline.

Under load, dozens of requests of one worker each send one small command (the refresh
script, a session check) at nearly the same moment. redis-py spends more on each call
(connection checkout, retry wrapper, timing hooks, a socket write and a wake-up per
reply) than on the command itself; in one pipeline those costs are paid once per turn,
not once per request. An idle server gets no delay: a lone command is flushed in the
same turn it was issued, by itself.

Only the sending is shared. Each command keeps its own reply or error, and a pipeline
without MULTI is not a transaction: the scripts stay atomic one by one, as before.
The time bound is shared too: one timer per pipeline, where each call had its own.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError

from authsvc.stores.redis_errors import guarded, translated

#: At most this many commands per pipeline; a longer queue is sent in several.
MAX_BATCH = 128


class CommandBatcher:
    def __init__(self, client: Any, timeout_s: float) -> None:
        self._client = client
        self._timeout_s = timeout_s
        self._queue: list[tuple[tuple[Any, ...], asyncio.Future[Any]]] = []
        self._sending: set[asyncio.Task[None]] = set()  # strong references

    async def execute(self, *args: Any) -> Any:
        """``args`` as one command (as for ``execute_command``); its reply. Raises
        StoreUnavailable when Redis does not answer within the timeout, else the
        command's own error (redis-py's, as a lone call would)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.append((args, future))
        if len(self._queue) == 1:
            # After the callbacks already due in this turn: their commands join in.
            loop.call_soon(self._flush)
        return await future

    async def evalsha(self, script: Any, keys: list[Any], args: list[Any]) -> Any:
        """Run a registered Script (``register_script``), sent whole where the server
        lost it (NOSCRIPT means it did not run, so sending it again is safe).

        Whole, with EVAL, not SCRIPT LOAD then EVALSHA: the server that lost it (a
        restart, a replica promoted by a failover: scripts are not replicated) gets it
        in the same command that runs it, over the connection that writes go to. A
        SCRIPT LOAD could go over another pooled connection, to a demoted master that
        accepts it, and leave the new master without the script."""
        try:
            return await self.execute("EVALSHA", script.sha, len(keys), *keys, *args)
        except NoScriptError:  # EVAL caches it there: the next EVALSHA finds it
            return await self.execute("EVAL", script.script, len(keys), *keys, *args)

    def _flush(self) -> None:
        queue, self._queue = self._queue, []
        for start in range(0, len(queue), MAX_BATCH):
            task = asyncio.ensure_future(self._send(queue[start : start + MAX_BATCH]))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[tuple[tuple[Any, ...], asyncio.Future[Any]]]) -> None:
        try:
            async with guarded(self._timeout_s):  # errors as StoreUnavailable
                replies = await self._replies([args for args, _ in batch])
                # A Cluster pipeline answers a node's failed connection (one a restart
                # closed) per command, where a single server's raises and is retried
                # by the client: those commands get their one retry here, on a fresh
                # connection (see stale_connection_retry for why a repeat is safe).
                stale = [
                    i for i, reply in enumerate(replies) if isinstance(reply, RedisConnectionError)
                ]
                if stale:
                    again = await self._replies([batch[i][0] for i in stale])
                    for i, reply in zip(stale, again, strict=True):
                        replies[i] = reply
        except BaseException as error:  # every waiter gets it
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            if not isinstance(error, Exception):
                raise
            return
        for (_, future), reply in zip(batch, replies, strict=True):
            if future.done():  # its caller gave up (timeout, cancellation)
                continue
            if isinstance(reply, Exception):  # one command's error: OOM, READONLY, …
                future.set_exception(translated(reply))
            else:
                future.set_result(reply)

    async def _replies(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """Each command's reply, or its error where the server refused just it."""
        if len(commands) == 1:
            return [await self._client.execute_command(*commands[0])]
        async with self._client.pipeline(transaction=False) as pipe:
            for args in commands:
                pipe.execute_command(*args)
            replies: list[Any] = await pipe.execute(raise_on_error=False)
            return replies
