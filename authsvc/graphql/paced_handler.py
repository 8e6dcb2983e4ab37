"""The handler side of pacing (graphql/pacing.py), shared by /graphql and the link
pages: both take requests that may ask for password hashing, so both resolve the
client once, admit it to hashing as its caller, and hold a refusal (or close the
connection of a client that keeps ignoring Retry-After) the same way."""

from __future__ import annotations

from asyncio import Future
from typing import Any

from authsvc.core.passwords import Caller, admit_as
from authsvc.graphql.client_address import ClientAddressResolver
from authsvc.graphql.http import BoundedBodyHandler
from authsvc.graphql.pacing import Pacing


class PacedHandler(BoundedBodyHandler):
    addresses: ClientAddressResolver
    pacing: Pacing
    #: Closed once answered: the client kept ignoring Retry-After.
    closing = False

    def admit_client(self) -> None:
        """Resolve the client's address and admit the request to hashing as that
        client's (``client_ip``, ``paced_connection``, ``caller``)."""
        peer = self.request.remote_ip or ""
        self.client_ip = self.addresses.resolve(peer, self.request.headers)
        # Behind a proxy its connections carry many clients: the address tells them apart.
        connection = getattr(self.request.connection, "stream", self.request.connection)
        self.paced_connection: object | None = connection if self.client_ip == peer else None
        self.caller: Caller = self.pacing.caller(self.paced_connection, self.client_ip)
        admit_as(self.caller)

    async def pace(self, retry_after_s: int | None) -> None:
        """A refusal (busy, rate limited) of a request that asked for hashing is held
        (half a second, or until a client that asked again too soon may ask), or its
        connection closed; other answers are not delayed."""
        if not self.caller.asked or self.application.settings["in_flight"].draining:
            return
        if await self.pacing.answered(
            self.paced_connection, self.client_ip, self.caller, retry_after_s
        ):
            self.set_header("Connection", "close")
            self.closing = True

    def finish(self, chunk: str | bytes | dict[str, Any] | None = None) -> Future[None]:
        written = super().finish(chunk)
        stream = getattr(self.request.connection, "stream", None)
        if self.closing and stream is not None:
            written.add_done_callback(lambda _: stream.close())
        return written
