"""Real HTTP servers for tests: an ASGI app under uvicorn, in a thread, on a free local port."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn


@contextlib.contextmanager
def running(app: Any, **config: Any) -> Iterator[int]:
    """Serve ``app`` on 127.0.0.1 until the block ends; yield the port.

    ``config`` goes to ``uvicorn.Config`` (``lifespan``, ``ssl_certfile``, ...). The socket is
    bound before the server starts, so the port is known and never raced for.
    """
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", **{"lifespan": "on", **config})
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        assert server.started, "the test server did not start within 20 s"
        yield int(sock.getsockname()[1])
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
