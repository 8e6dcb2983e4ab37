"""The ceiling of this machine for `make bench`: a bare Tornado endpoint answering a
small JSON body, with the same worker layout as authsvc (SO_REUSEPORT per process)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import tornado.httpserver
import tornado.netutil
import tornado.web


class Ping(tornado.web.RequestHandler):
    def post(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(b'{"data":{"ok":true}}')

    get = post


async def serve(port: int) -> None:
    server = tornado.httpserver.HTTPServer(tornado.web.Application([(r"/.*", Ping)]))
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
            asyncio.run(serve(port))
            os._exit(0)
        children.append(pid)
    signal.signal(signal.SIGTERM, lambda *_: [os.kill(c, signal.SIGTERM) for c in children])
    for child in children:
        os.waitpid(child, 0)


if __name__ == "__main__":
    main()
