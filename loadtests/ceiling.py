"""The ceiling of this machine for `make bench`: a bare Tornado endpoint answering a
small JSON body, with the same worker layout as authsvc (SO_REUSEPORT per process),
the same event loop (EVENT_LOOP, or authsvc's default: uvloop where installed) and the
same HTTP server settings (the read chunk size, the timeouts' defaults or HTTP_*)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import tornado.netutil
import tornado.web

from authsvc.http_server import http_server
from authsvc.loops import loop_factory
from authsvc.settings import Settings


class Ping(tornado.web.RequestHandler):
    def post(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(b'{"data":{"ok":true}}')

    get = post


async def serve(port: int) -> None:
    settings = Settings(_env_file=None)
    server = http_server(tornado.web.Application([(r"/.*", Ping)]), settings)
    server.add_sockets(tornado.netutil.bind_sockets(port, "127.0.0.1", reuse_port=True))
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()


def main() -> None:
    port, workers = int(sys.argv[1]), int(sys.argv[2])
    children = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            factory = loop_factory(os.environ.get("EVENT_LOOP") or None)
            with asyncio.Runner(loop_factory=factory) as runner:
                runner.run(serve(port))
            os._exit(0)
        children.append(pid)
    signal.signal(signal.SIGTERM, lambda *_: [os.kill(c, signal.SIGTERM) for c in children])
    for child in children:
        os.waitpid(child, 0)


if __name__ == "__main__":
    main()
