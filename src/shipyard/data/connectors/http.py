"""JSON HTTP APIs, page by page, behind the outbound-URL policy of ``network.py``.

Requests are plain ``GET``s made with the standard library's ``http.client`` (no proxies, no
automatic redirects). Each hop of a redirect (at most ``MAX_REDIRECTS``) is checked with
``network.check_url`` and the socket connects only to an address that passes the same check,
so neither a redirect nor a DNS answer that changes between check and connect reaches a refused
address. Configured headers are not sent to another origin after a redirect. Header values may
name environment variables as ``${NAME}``; values never appear in messages or logs.

A request is retried (``retries`` times, exponential backoff with jitter from
``BACKOFF_BASE_S``) on connection errors, timeouts, 429 and 5xx, honouring ``Retry-After`` (up
to ``MAX_RETRY_AFTER_S``). ``timeout_s`` bounds each whole request (connect, headers, body) and
``max_response_bytes`` its body. Bodies must be strict JSON (``NaN``, duplicate keys and deep
nesting are refused) with a JSON content type (or none).

Records are the list at ``records`` (a dotted path) in each response; types follow the rules
of ``connectors/jsonl.py`` (nested values become compact JSON text). All pages are fetched when
``scan()`` is called and held in memory (bounded by ``max_pages`` x ``max_response_bytes``).
``_row`` numbers records in the order received. The watermark is filtered here after the fetch;
``since_param`` also passes it to the API so it can send less.

Errors: ``SourceUnavailable`` (unreachable, timed out, HTTP errors, after retries) or
``InvalidData`` (not JSON, records path missing, too large), naming the URL and the page.
"""

from __future__ import annotations

import email.utils
import functools
import http.client
import os
import random
import re
import ssl
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from shipyard.core.errors import InvalidArgument, InvalidData, SourceUnavailable
from shipyard.data import network
from shipyard.data.connectors.base import (
    ROW,
    SOURCE,
    ConnectorBase,
    CursorPagination,
    HttpOptions,
    PagePagination,
    bookkeeping,
    since_filter,
)
from shipyard.data.connectors.jsonl import JsonError, SchemaBuilder, parse_json, records_frame

if TYPE_CHECKING:
    from pathlib import Path

    import polars as pl

    from shipyard.data.connectors.base import SourceSpec

__all__ = ["HttpConnector", "HttpOptions"]

MAX_REDIRECTS = 5
BACKOFF_BASE_S = 0.5
MAX_BACKOFF_S = 30.0
MAX_RETRY_AFTER_S = 60.0
_REDIRECTS = (301, 302, 303, 307, 308)
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_JSON_TYPES = re.compile(r"^(application/([\w.+-]+\+)?json|text/json)$")
_Response = tuple[int, http.client.HTTPMessage, bytes]


class HttpConnector(ConnectorBase):
    """Reads a JSON API; see the module docstring."""

    def __init__(self, spec: SourceSpec, *, base_dir: Path) -> None:
        super().__init__(spec, base_dir=base_dir)
        self.options = spec.http or HttpOptions()
        self.sleep = time.sleep  # tests may replace it

    def scan(self, since: object | None = None) -> pl.LazyFrame:
        """Fetch every page now; return the records (watermark > ``since``) as a LazyFrame."""
        records = self._records(since)
        builder = SchemaBuilder()
        for record in records:
            builder.add(record)
        schema = builder.schema()
        if reserved := sorted({SOURCE, ROW} & set(schema)):
            raise InvalidData(f"source {self.spec.name!r}: fields {reserved} are reserved")
        frame, misfits = records_frame(records, schema)
        assert not misfits, "a schema inferred from all records fits them all"
        lf = bookkeeping(frame, self.spec.name, 0).lazy()
        if since is not None and self.spec.watermark is not None and records:
            lf = lf.filter(
                since_filter(self.spec.name, lf.collect_schema(), self.spec.watermark, since)
            )
        return lf

    # -- pages ---------------------------------------------------------------------------------

    def _records(self, since: object | None) -> list[dict[str, Any]]:
        o = self.options
        headers = self._headers()
        params: dict[str, Any] = dict(o.params)
        if since is not None and o.since_param:
            params[o.since_param] = since.isoformat() if hasattr(since, "isoformat") else since
        pagination = o.pagination
        records: list[dict[str, Any]] = []
        cursor: object = None
        seen: set[str] = set()
        for page in range(1, o.max_pages + 1):
            query = dict(params)
            if isinstance(pagination, PagePagination):
                query[pagination.page_param] = pagination.start + page - 1
                if pagination.size_param:
                    query[pagination.size_param] = pagination.size
            if isinstance(pagination, CursorPagination) and cursor is not None:
                query[pagination.cursor_param] = cursor
            url = _with_query(self.spec.uri, query)
            document = self._json(self._get(url, headers, page), url, page)
            items = self._items(document, url, page)
            records.extend(items)
            if isinstance(pagination, PagePagination):
                if not items:
                    return records
            elif isinstance(pagination, CursorPagination):
                cursor = _at(document, pagination.cursor_field)
                if cursor is None or cursor == "":
                    return records
                if str(cursor) in seen:
                    raise InvalidData(f"{self._where(url, page)}: the cursor {cursor!r} repeats")
                seen.add(str(cursor))
            else:
                return records
        raise InvalidData(
            f"source {self.spec.name!r}: more than {o.max_pages} pages; raise http.max_pages "
            "or narrow the request"
        )

    def _json(self, body: bytes, url: str, page: int) -> object:
        try:
            return parse_json(body.decode("utf-8-sig"))
        except UnicodeDecodeError:
            raise InvalidData(f"{self._where(url, page)}: the body is not UTF-8 JSON") from None
        except JsonError as e:
            raise InvalidData(f"{self._where(url, page)}: the body is not JSON: {e}") from None

    def _items(self, document: object, url: str, page: int) -> list[dict[str, Any]]:
        path = self.options.records
        items = _at(document, path) if path else document
        if items is None and path:
            raise InvalidData(
                f"{self._where(url, page)}: no records at {path!r}; check http.records"
            )
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise InvalidData(
                f"{self._where(url, page)}: records at {path or 'the top level'!r} must be a "
                "list of JSON objects"
            )
        return items

    def _headers(self) -> dict[str, str]:
        def expand(key: str, value: str) -> str:
            def var(match: re.Match[str]) -> str:
                name = match.group(1)
                if name not in os.environ:
                    raise InvalidArgument(
                        f"source {self.spec.name!r}: header {key!r} uses ${{{name}}}, which is "
                        "not set in the environment"
                    )
                return os.environ[name]

            expanded = _ENV.sub(var, value)
            if any(c in expanded for c in "\r\n\0"):
                raise InvalidArgument(f"source {self.spec.name!r}: header {key!r} has a newline")
            return expanded

        return {k: expand(k, v) for k, v in self.options.headers.items()}

    def _where(self, url: str, page: int) -> str:
        return f"source {self.spec.name!r}: {url} (page {page})"

    # -- requests ------------------------------------------------------------------------------

    def _get(self, url: str, headers: dict[str, str], page: int) -> bytes:
        current, origin = url, _origin(url)
        for _ in range(MAX_REDIRECTS + 1):
            network.check_url(current, allow_private=self.options.allow_private_network)
            sent = headers if _origin(current) == origin else {}
            status, response_headers, body = self._with_retries(current, sent, page)
            if status not in _REDIRECTS:
                return body
            location = response_headers.get("Location")
            if not location:
                raise SourceUnavailable(f"{self._where(current, page)}: redirect without Location")
            current = urljoin(current, location)
        raise SourceUnavailable(f"{self._where(url, page)}: more than {MAX_REDIRECTS} redirects")

    def _with_retries(self, url: str, headers: dict[str, str], page: int) -> _Response:
        attempts = self.options.retries + 1
        failure = ""
        for attempt in range(attempts):
            wait = min(MAX_BACKOFF_S, BACKOFF_BASE_S * 2**attempt) * random.uniform(0.5, 1.0)  # noqa: S311
            try:
                status, response_headers, body = self._request(url, headers, page)
            except (OSError, http.client.HTTPException) as e:
                failure = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            else:
                if status != 429 and status < 500:
                    if status >= 400 or (300 <= status < 400 and status not in _REDIRECTS):
                        raise SourceUnavailable(
                            f"{self._where(url, page)}: HTTP {status}; check the URL, params "
                            "and headers"
                        )
                    return status, response_headers, body
                failure = f"HTTP {status}"
                wait = _retry_after(response_headers.get("Retry-After"), default=wait)
            if attempt + 1 < attempts:
                self.sleep(wait)
        raise SourceUnavailable(
            f"{self._where(url, page)}: failed after {attempts} attempt(s): {failure}"
        )

    def _request(self, url: str, headers: dict[str, str], page: int) -> _Response:
        o = self.options
        parts = urlsplit(url)
        host = parts.hostname or ""
        host = f"[{host}]" if ":" in host else host
        deadline = time.monotonic() + o.timeout_s
        conn: http.client.HTTPConnection
        if parts.scheme.lower() == "https":
            context = ssl.create_default_context()
            conn = http.client.HTTPSConnection(
                host, parts.port, timeout=o.timeout_s, context=context
            )
        else:
            conn = http.client.HTTPConnection(host, parts.port, timeout=o.timeout_s)
        conn._create_connection = functools.partial(  # type: ignore[attr-defined]
            network.connect_checked, allow_private=o.allow_private_network
        )
        try:
            target = urlunsplit(("", "", parts.path or "/", parts.query, ""))
            base = {"Accept": "application/json", "Accept-Encoding": "identity"}
            base["User-Agent"] = "shipyard"
            conn.request("GET", target, headers={**base, **headers})
            response = conn.getresponse()
            if response.status >= 300:  # redirects, retries and errors: the body is not needed
                return response.status, response.headers, b""
            return (
                response.status,
                response.headers,
                self._body(response, conn, deadline, url, page),
            )
        finally:
            conn.close()

    def _body(
        self,
        response: http.client.HTTPResponse,
        conn: http.client.HTTPConnection,
        deadline: float,
        url: str,
        page: int,
    ) -> bytes:
        limit = self.options.max_response_bytes
        too_big = (
            f"{self._where(url, page)}: response larger than {limit} bytes (max_response_bytes)"
        )
        length = response.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise InvalidData(too_big)
        kind = response.headers.get_content_type() if response.headers.get("Content-Type") else ""
        if kind and not _JSON_TYPES.match(kind):
            raise InvalidData(f"{self._where(url, page)}: expected JSON, got content type {kind}")
        chunks: list[bytes] = []
        size = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no complete response within {self.options.timeout_s} s")
            if conn.sock is not None:
                conn.sock.settimeout(remaining)
            chunk = response.read(min(1 << 16, limit + 1 - size))
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise InvalidData(too_big)


def _with_query(uri: str, params: dict[str, Any]) -> str:
    parts = urlsplit(uri)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.update({k: _param(v) for k, v in params.items()})
    return urlunsplit(parts._replace(query=urlencode(query)))


def _param(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port


def _at(document: object, path: str) -> object:
    """The value at a dotted path of nested objects, or None."""
    value = document
    for key in path.split(".") if path else []:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _retry_after(header: str | None, *, default: float) -> float:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date)."""
    if header is None:
        return default
    header = header.strip()
    if header.isdigit():
        return min(float(header), MAX_RETRY_AFTER_S)
    try:
        when = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return default
    return min(max(0.0, when.timestamp() - time.time()), MAX_RETRY_AFTER_S)
