"""HTTP connector against a real local server: pagination, retries, limits, SSRF guards."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import polars as pl
import pytest

from shipyard.core.errors import InvalidArgument, InvalidData, SourceUnavailable
from shipyard.data.connectors.base import SourceSpec, max_watermark, open_connector
from shipyard.data.connectors.http import HttpConnector

Reply = tuple[int, dict[str, str], bytes]
Route = Callable[[dict[str, str], dict[str, str]], Reply]


def as_json(document: object, status: int = 200, **headers: str) -> Reply:
    return status, {"Content-Type": "application/json", **headers}, json.dumps(document).encode()


@dataclass
class Server:
    base: str
    routes: dict[str, Route] = field(default_factory=dict)
    hits: list[tuple[str, dict[str, str], dict[str, str]]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return self.base.replace("127.0.0.1", host) + path


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server(base="")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            headers = {k.lower(): v for k, v in self.headers.items()}
            state.hits.append((parts.path, query, headers))
            route = state.routes.get(parts.path)
            if route is None:
                status, extra, body = 404, {}, b"{}"
            else:
                status, extra, body = route(query, headers)
            self.send_response(status)
            if extra.pop("Transfer-Encoding", None) == "chunked":
                self.send_header("Transfer-Encoding", "chunked")
                for key, value in extra.items():
                    self.send_header(key, value)
                self.end_headers()
                for start in range(0, len(body), 1000):
                    piece = body[start : start + 1000]
                    self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                self.wfile.write(b"0\r\n\r\n")
                return
            for key, value in extra.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Quiet(ThreadingHTTPServer):
        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # clients that stop reading early (size limit, timeout) break the pipe

    httpd = Quiet(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield state
    state.release.set()
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def connector(uri: str, watermark: str | None = None, **http: Any) -> HttpConnector:
    http.setdefault("allow_private_network", True)
    spec = SourceSpec(name="events", uri=uri, http=http, watermark=watermark)
    result = open_connector(spec, base_dir=Path("/"))
    assert isinstance(result, HttpConnector)
    result.sleep = lambda _s: None
    return result


def fetch(uri: str, since: object | None = None, **http: Any) -> pl.DataFrame:
    with connector(uri, watermark=http.pop("watermark", None), **http) as c:
        return c.scan(since).collect()


def test_single_response_with_records_path(server: Server) -> None:
    items = [{"id": 1, "tags": ["a"], "who": {"n": "x"}}, {"id": 2, "extra": True}]
    server.routes["/api"] = lambda q, h: as_json({"data": {"items": items}})
    frame = fetch(server.url("/api?fixed=1"), records="data.items", params={"k": "v"})
    assert frame.to_dicts() == [
        {
            "id": 1,
            "tags": '["a"]',
            "who": '{"n":"x"}',
            "extra": None,
            "_source": "events",
            "_row": 0,
        },
        {"id": 2, "tags": None, "who": None, "extra": True, "_source": "events", "_row": 1},
    ]
    assert server.hits[0][1] == {"fixed": "1", "k": "v"}
    assert server.hits[0][2]["accept"] == "application/json"


def test_response_that_is_the_list(server: Server) -> None:
    server.routes["/list"] = lambda q, h: as_json([{"a": 1}])
    assert fetch(server.url("/list"))["a"].to_list() == [1]


def test_page_pagination_stops_on_empty_page(server: Server) -> None:
    def page(q: dict[str, str], _h: dict[str, str]) -> Reply:
        n, size = int(q["p"]), int(q["n"])
        rows = [{"id": (n - 1) * size + i} for i in range(size)] if n <= 3 else []
        return as_json({"rows": rows})

    server.routes["/p"] = page
    pagination = {"type": "page", "page_param": "p", "size_param": "n", "size": 2}
    frame = fetch(server.url("/p"), records="rows", pagination=pagination)
    assert frame["id"].to_list() == [0, 1, 2, 3, 4, 5]
    assert frame["_row"].to_list() == [0, 1, 2, 3, 4, 5]
    assert [hit[1]["p"] for hit in server.hits] == ["1", "2", "3", "4"]


def test_cursor_pagination(server: Server) -> None:
    pages = {None: ([1, 2], "c2"), "c2": ([3], "c3"), "c3": ([4], None)}

    def cursor(q: dict[str, str], _h: dict[str, str]) -> Reply:
        ids, nxt = pages[q.get("after")]
        return as_json({"data": [{"id": i} for i in ids], "meta": {"next": nxt}})

    server.routes["/c"] = cursor
    pagination = {"type": "cursor", "cursor_field": "meta.next", "cursor_param": "after"}
    frame = fetch(server.url("/c"), records="data", pagination=pagination)
    assert frame["id"].to_list() == [1, 2, 3, 4]


def test_cursor_that_repeats_and_too_many_pages(server: Server) -> None:
    server.routes["/loop"] = lambda q, h: as_json({"data": [{"a": 1}], "next": "same"})
    pagination = {"type": "cursor", "cursor_field": "next", "cursor_param": "c"}
    with pytest.raises(InvalidData, match="repeats"):
        fetch(server.url("/loop"), records="data", pagination=pagination)
    server.routes["/many"] = lambda q, h: as_json({"data": [{"a": 1}]})
    with pytest.raises(InvalidData, match="more than 3 pages"):
        fetch(server.url("/many"), records="data", pagination={"type": "page"}, max_pages=3)


def test_retry_after_503_then_success(server: Server) -> None:
    calls: list[int] = []

    def flaky(_q: dict[str, str], _h: dict[str, str]) -> Reply:
        calls.append(1)
        return as_json({"error": "busy"}, 503) if len(calls) == 1 else as_json([{"ok": 1}])

    server.routes["/flaky"] = flaky
    waits: list[float] = []
    with connector(server.url("/flaky")) as c:
        c.sleep = waits.append
        assert c.scan().collect()["ok"].to_list() == [1]
    assert len(calls) == 2
    assert len(waits) == 1
    assert 0.25 <= waits[0] <= 0.5  # BACKOFF_BASE_S with jitter


def test_429_honours_retry_after(server: Server) -> None:
    calls: list[int] = []

    def limited(_q: dict[str, str], _h: dict[str, str]) -> Reply:
        calls.append(1)
        if len(calls) == 1:
            return 429, {"Retry-After": "0"}, b""
        return as_json([{"ok": 1}])

    server.routes["/limited"] = limited
    waits: list[float] = []
    with connector(server.url("/limited")) as c:
        c.sleep = waits.append
        assert c.scan().collect().height == 1
    assert waits == [0.0]


def test_retries_exhausted_and_client_errors(server: Server) -> None:
    server.routes["/down"] = lambda q, h: (500, {}, b"")
    with pytest.raises(SourceUnavailable, match=r"/down.*page 1.*3 attempt\(s\): HTTP 500"):
        fetch(server.url("/down"), retries=2)
    assert len(server.hits) == 3
    with pytest.raises(SourceUnavailable, match="HTTP 404"):
        fetch(server.url("/missing"))
    assert len(server.hits) == 4  # no retry on 404


def test_timeout_is_unavailable(server: Server) -> None:
    def slow(_q: dict[str, str], _h: dict[str, str]) -> Reply:
        server.release.wait(5)
        return as_json([])

    server.routes["/slow"] = slow
    with pytest.raises(SourceUnavailable, match=r"/slow.*TimeoutError"):
        fetch(server.url("/slow"), timeout_s=0.3, retries=1)


def test_connection_refused_is_unavailable() -> None:
    with pytest.raises(SourceUnavailable, match="ConnectionRefusedError"):
        fetch("http://127.0.0.1:1/x", retries=0)


def test_redirect_to_metadata_address_is_refused(server: Server) -> None:
    server.routes["/r"] = lambda q, h: (302, {"Location": "http://169.254.169.254/latest/"}, b"")
    with pytest.raises(InvalidArgument, match=r"169\.254\.169\.254.*link-local"):
        fetch(server.url("/r"))


def test_redirects_are_followed_and_headers_kept_to_the_same_origin_only(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("API_TOKEN", "tok-123")
    server.routes["/a"] = lambda q, h: (301, {"Location": "/b"}, b"")
    server.routes["/b"] = lambda q, h: (307, {"Location": server.url("/c", host="localhost")}, b"")
    server.routes["/c"] = lambda q, h: as_json([{"x": 1}])
    frame = fetch(server.url("/a"), headers={"Authorization": "Bearer ${API_TOKEN}"})
    assert frame["x"].to_list() == [1]
    sent = {path: headers.get("authorization") for path, _, headers in server.hits}
    assert sent == {"/a": "Bearer tok-123", "/b": "Bearer tok-123", "/c": None}


def test_too_many_redirects(server: Server) -> None:
    server.routes["/r"] = lambda q, h: (302, {"Location": "/r"}, b"")
    with pytest.raises(SourceUnavailable, match="more than 5 redirects"):
        fetch(server.url("/r"))


def test_missing_env_var_is_named_and_values_never_shown(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(InvalidArgument, match=r"\$\{NOPE_TOKEN\}"):
        fetch(server.url("/x"), headers={"X-Key": "${NOPE_TOKEN}"})
    monkeypatch.setenv("SECRET_TOKEN", "very-secret-value")
    with pytest.raises(SourceUnavailable) as info:
        fetch(server.url("/x"), headers={"X-Key": "${SECRET_TOKEN}"})
    assert "very-secret-value" not in str(info.value)
    assert "very-secret-value" not in repr(SourceSpec(name="s", uri=server.url("/x")))


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        ((200, {"Content-Type": "application/json"}, b"<html>"), "not JSON"),
        ((200, {"Content-Type": "text/html"}, b"[]"), "content type text/html"),
        ((200, {"Content-Type": "text/plain"}, b"[]"), "content type text/plain"),
        ((200, {}, b'[{"a": NaN}]'), "NaN is not valid JSON"),
        ((200, {}, b'[{"a": 1, "a": 2}]'), "duplicate key"),
        ((200, {}, b"[" * 10_000 + b"]" * 10_000), "nested too deeply|not JSON"),
        ((200, {}, b'{"other": []}'), "no records at 'data'"),
        ((200, {}, b'{"data": {"a": 1}}'), "must be a list"),
        ((200, {}, b'{"data": [1, 2]}'), "must be a list of JSON objects"),
        ((200, {}, b"\xff\xfe"), "not UTF-8"),
    ],
)
def test_bodies_that_are_not_usable_records(server: Server, reply: Reply, message: str) -> None:
    server.routes["/bad"] = lambda q, h: reply
    with pytest.raises(InvalidData, match=rf"/bad \(page 1\).*({message})"):
        fetch(server.url("/bad"), records="data")


@pytest.mark.parametrize("chunked", [False, True])
def test_response_size_limit(server: Server, chunked: bool) -> None:
    body = json.dumps([{"v": "x" * 100} for _ in range(100)]).encode()
    headers = {"Transfer-Encoding": "chunked"} if chunked else {}
    server.routes["/big"] = lambda q, h: (200, dict(headers), body)
    with pytest.raises(InvalidData, match="larger than 5000 bytes"):
        fetch(server.url("/big"), max_response_bytes=5000)
    assert fetch(server.url("/big"), max_response_bytes=len(body)).height == 100


def test_private_network_is_refused_unless_allowed(server: Server) -> None:
    server.routes["/ok"] = lambda q, h: as_json([{"a": 1}])
    with pytest.raises(InvalidArgument, match=r"loopback.*allow_private_network"):
        fetch(server.url("/ok"), allow_private_network=False)
    with pytest.raises(InvalidArgument, match="loopback"):
        fetch(server.url("/ok", host="localhost"), allow_private_network=False)
    assert server.hits == []
    assert fetch(server.url("/ok"), allow_private_network=True).height == 1


def test_watermark_filters_and_is_passed_to_the_api(server: Server) -> None:
    rows = [{"id": i, "updated": f"2024-01-0{i}"} for i in (1, 2, 3)]
    server.routes["/w"] = lambda q, h: as_json(rows)
    first = fetch(server.url("/w"), watermark="updated", since_param="since")
    mark = max_watermark(first.lazy(), "updated")
    assert mark == "2024-01-03"
    assert "since" not in server.hits[0][1]
    rows.append({"id": 4, "updated": "2024-01-04"})
    new = fetch(server.url("/w"), since=mark, watermark="updated", since_param="since")
    assert new["id"].to_list() == [4]
    assert server.hits[1][1]["since"] == "2024-01-03"


def test_scheme_must_be_http() -> None:
    spec = SourceSpec(name="s", uri="ftp://127.0.0.1/x", format="http")
    with pytest.raises(InvalidArgument, match="scheme 'ftp'"):
        open_connector(spec, base_dir=Path("/")).scan()


def test_nothing_new_since_the_watermark(server: Server) -> None:
    server.routes["/none"] = lambda q, h: as_json({"data": []})
    frame = fetch(server.url("/none"), since="2024-01-01", watermark="updated", records="data")
    assert frame.height == 0
    assert frame.columns == ["_source", "_row"]
