"""A real HTTP/1.1 keep-alive server on 127.0.0.1 for load tests, counting what it served.

It sleeps ``sleep_s`` per request and answers 500 to every ``fail_every``-th request, keeping
its own counts so tests compare the generator's report against the server's view.
"""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class Target:
    url: str
    sleep_s: float = 0.0
    fail_every: int = 0
    requests: int = 0
    failures: int = 0
    bodies: list[bytes] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextmanager
def http_target(sleep_s: float = 0.0, fail_every: int = 0) -> Iterator[Target]:
    target = Target(url="", sleep_s=sleep_s, fail_every=fail_every)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive
        disable_nagle_algorithm = True  # else delayed ACKs add ~40 ms to every answer

        def _answer(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            with target.lock:
                target.requests += 1
                n = target.requests
                fail = target.fail_every and n % target.fail_every == 0
                target.failures += bool(fail)
                target.bodies.append(body)
                target.headers.append({k.lower(): v for k, v in self.headers.items()})
            if target.sleep_s:
                time.sleep(target.sleep_s)
            payload = b'{"error":"boom"}' if fail else b'{"ok":true}'
            self.send_response(500 if fail else 200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = _answer

        def log_message(self, *args: object) -> None:
            pass

    class Server(http.server.ThreadingHTTPServer):
        # The default listen backlog of 5 resets connections when a burst of new ones meets
        # a busy machine (the accept thread starved by parallel tests): the client then counts
        # a ReadError for a request this server never saw. Real servers listen deeper.
        request_queue_size = 256

    server = Server(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    target.url = f"http://127.0.0.1:{server.server_address[1]}/models/m/predict"
    try:
        yield target
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def numbered_body(i: int) -> bytes:
    """A body naming its request (module level: it must pickle into a spawned process)."""
    return b'{"n": %d}' % i
