"""The shared bad-input corpus of RELIABILITY.md, as plain lists other packages' tests import.

Usage: ``from tests.corpus import BAD_NAMES`` and parametrize over it. Items that cannot be a
string (a symlink pointing out of the store, a redirecting URL) are exercised by dedicated tests
that build them on disk or with a server.
"""

from __future__ import annotations

#: Names and keys that must never be accepted as an artifact name or become a path.
BAD_NAMES: list[str] = [
    # RELIABILITY.md "Names and keys"
    "../x",
    "..\\x",
    "%2e%2e%2f",
    "%252e%252e%252f",
    "..%2f",
    "a/../../b",
    "/etc/passwd",
    "C:\\x",
    "a;/../../b",
    "a#/../../b",
    "a?x=/../../b",
    "\uff0e\uff0e\uff0f",  # fullwidth "../" (U+FF0E U+FF0E U+FF0F)
    "\uff0e\uff0e\uff0fetc\uff0fpasswd",
    "a\x00b",
    "\x00",
    "a" * 4096,
    "model.",
    "model ",
    "dir./x",
    "dir /x",
    "../root_evil/x",
    # further traversal and encoding shapes
    "",
    ".",
    "..",
    "./x",
    "a/./b",
    "a/..",
    "a//b",
    "a/",
    "/",
    "//server/share",
    "..\\..\\windows\\win.ini",
    "a\\b",
    "C:x",
    "c:/x",
    "file:///etc/passwd",
    "file:x",
    "%2e%2e/x",
    "a%00b",
    "~",
    "~/x",
    "~root/x",
    "a\nb",
    "a\rb",
    "a\tb",
    "a\x7fb",
    "a\x85b",  # C1 control (NEL)
    "a\u202eb",  # right-to-left override
    "a\u200bb",  # zero-width space
    "\uff41",  # fullwidth "a"
    "a\u2215b",  # division slash
    "e\u0301",  # decomposed "é" (NFKC composes it)
    " x",
    "x/ y",
    "a" * 256,
    "/".join(["a" * 200] * 6),  # 1,205 characters
    "a*b",
    "a|b",
    "a<b>",
    'a"b',
    "a'b",
    "a$b",
    "a`b`",
    "a&b",
]

#: Names that must be accepted unchanged.
GOOD_NAMES: list[str] = [
    "model/model.skops",
    "plots/roc.png",
    "a",
    "model.onnx",
    ".hidden",
    "..hidden",
    "data/train-v1.parquet",
    "x_y+z=1@2.txt",
    "metrics/run 1.json",
    "a/b/c/d/e/f",
    "donn\u00e9es/r\u00e9seau.csv",  # precomposed letters are NFKC-stable
    "1/2/3",
    "a" * 255,
    "/".join(["a" * 200] * 5),  # 1,004 characters
]

#: URIs that a server-side fetch or a "register from URL" must refuse (lesson 4). The redirect to
#: a private address needs a live server and is not a string here.
BAD_URIS: list[str] = [
    "file:///etc/passwd",
    "FILE:///etc/passwd",
    "file://localhost/etc/passwd",
    "/etc/passwd",
    "etc/passwd",
    "../../etc/passwd",
    "http://169.254.169.254/",
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::1]/",
    "http://0x7f000001/",
    "http://2130706433/",
    "http://127.1/",
    "http://localhost:6379/",
    "http://10.0.0.1/",
    "http://192.168.1.1/",
    "gopher://localhost:6379/_INFO",
    "dict://localhost:11211/stat",
]


#: Script-injection payloads for every place a user-supplied string is shown (the web UI's
#: run names, params, tags, notes, descriptions): each must come back escaped, never run.
_PAGE_XSS: list[str] = [
    "<script>window.__xss=1</script>",
    "<img src=x onerror=window.__xss=1>",
    "<svg onload=window.__xss=1>",
    '"><script>window.__xss=1</script>',
    "'><img src=x onerror=window.__xss=1>",
    "javascript:window.__xss=1",
    "<iframe src=javascript:window.__xss=1>",
    "{{7*7}}",  # template injection: must show as typed, not 49
    "</textarea><script>window.__xss=1</script>",
    '<a href="javascript:window.__xss=1">x</a>',
    "<style>body{display:none}</style>",
    "&lt;script&gt;window.__xss=1&lt;/script&gt;",
]

#: Request bodies an HTTP API must refuse with a precise 4xx, never a 500 (RELIABILITY.md "HTTP
#: bodies"): (content type, raw bytes). An object of unknown fields may still be a valid search.
BAD_BODIES: list[tuple[str, bytes]] = [
    ("application/json", b""),
    ("application/json", b"{"),
    ("application/json", b'{"value": NaN}'),
    ("application/json", b'{"value": Infinity, "key": "m"}'),
    ("application/json", b"[" * 10_000 + b"]" * 10_000),
    ("application/json", b'{"a":' * 5_000 + b"1" + b"}" * 5_000),
    ("application/json", b"[" + b"1," * 1_000_000 + b"1]"),
    ("application/json", b'{"key": "a", "key": "b"}'),
    ("application/json", b"[]"),
    ("application/json", b'"text"'),
    ("application/json", b"null"),
    ("application/json", b"12"),
    ("application/json", b'{"run_id": 12, "key": ["x"], "value": {"a": 1}, "step": "x"}'),
    ("application/json", b'{"name": {"$ne": 1}, "experiment_id": [1], "max_results": -1}'),
    ("application/json", b'{"run_id": "../../etc/passwd", "key": "../x", "value": 1}'),
    ("application/json", b"\xff\xfe\x00"),
    ("text/plain", b'{"name": "x"}'),
    ("application/x-www-form-urlencoded", b"name=x"),
    ("application/python-pickle", b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00."),
    ("", b'{"name": "x"}'),
]

# Markup that must never run when a user-supplied string is shown in a page (comments, names,
# reasons): each is rendered or escaped and then checked for live tags, handlers and URLs.
# Both lists in one (a merge had defined XSS_PAYLOADS twice, the second hiding the first).
XSS_PAYLOADS: list[str] = [
    *_PAGE_XSS,
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "<svg/onload=alert(1)>",
    "<iframe src=javascript:alert(1)></iframe>",
    '"><script>alert(1)</script>',
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    "[click](java\tscript:alert(1))",
    "[click](&#106;avascript:alert(1))",
    "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[click](vbscript:msgbox(1))",
    "![x](javascript:alert(1))",
    '[x](https://example.com "a" onmouseover="alert(1)")',
    '<a href="javascript:alert(1)">x</a>',
    "<details open ontoggle=alert(1)>",
    "`<script>alert(1)</script>`",
    "<style>*{background:url(javascript:alert(1))}</style>",
    "[x]: javascript:alert(1)\n\n[y][x]",
]


def live_markup(html: str) -> list[str]:
    """What in ``html`` could run: live tags, event handlers inside tags, unsafe link targets.

    Empty when a payload of ``XSS_PAYLOADS`` was rendered inert (escaped text is fine).
    """
    import re

    found = re.findall(r"<\s*(?:script|img|svg|iframe|style|details|object|embed)\b", html, re.I)
    found += re.findall(r"<[^>]*\son[a-z]+\s*=", html, re.I)
    for url in re.findall(r'(?:href|src|action)\s*=\s*"([^"]*)"', html, re.I):
        if ":" in url and not url.lower().startswith(("http://", "https://", "mailto:")):
            found.append(url)
    return found
