"""The UI's guard: sign-in, session cookie, CSRF, CSP, the permission table, escaping."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from markupsafe import escape
from starlette.routing import Route
from starlette.testclient import TestClient

from shipyard.security.permissions import PUBLIC, UI_ROUTES, Action
from shipyard.ui.guard import CSP
from tests.corpus import XSS_PAYLOADS
from tests.unit.ui.conftest import csrf_of
from tests.unit.ui.env import Env

ClientFor = Callable[[str], TestClient]


def test_every_ui_route_has_a_permission_entry_and_every_entry_a_route(app: object) -> None:
    routes = {
        (method, route.path)
        for route in app.router.routes  # type: ignore[attr-defined]
        if isinstance(route, Route)
        for method in route.methods or ()
        if method != "HEAD"
    }
    missing = sorted(r for r in routes if r not in UI_ROUTES)
    assert not missing, f"UI routes without a permission-table entry: {missing}"
    stale = sorted(r for r in UI_ROUTES if r not in routes)
    assert not stale, f"permission-table entries for UI routes that do not exist: {stale}"


def test_only_sign_in_static_and_health_are_public() -> None:
    public = sorted(path for (_, path), action in UI_ROUTES.items() if action == PUBLIC)
    assert public == ["/healthz", "/login", "/login", "/static/{path:path}"]


def test_every_state_change_route_is_a_write_action() -> None:
    posts = {path: action for (method, path), action in UI_ROUTES.items() if method == "POST"}
    assert posts == {
        "/login": PUBLIC,
        "/logout": Action.WORKSPACE_READ,
        "/runs/{run_id}/notes": Action.RUNS_WRITE,
        "/reviews": Action.MODELS_REQUEST_PROMOTION,
        "/reviews/{request_id}/approve": Action.MODELS_APPROVE,
        "/reviews/{request_id}/reject": Action.MODELS_REJECT,
        "/comments": Action.COMMENTS_WRITE,
    }


def test_pages_need_a_session(fresh: TestClient) -> None:
    answer = fresh.get("/runs", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=%2Fruns"
    htmx = fresh.get("/runs/table", headers={"HX-Request": "true"}, follow_redirects=False)
    assert htmx.status_code == 401
    assert htmx.headers["hx-redirect"].startswith("/login?next=")
    assert fresh.get("/runs/x/metric?key=a").status_code in (303, 200)  # redirected to sign-in
    assert "Sign in" in fresh.get("/runs/x/metric?key=a").text


def test_sign_in_sets_a_hardened_fresh_session_cookie(
    fresh: TestClient, env: Env, client_for: ClientFor
) -> None:
    page = fresh.get("/login")
    anonymous = page.cookies.get("shipyard_session")
    answer = fresh.post(
        "/login",
        data={"token": env.tokens["viewer"], "csrf": csrf_of(page.text), "next": "/models"},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/models"
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie or "samesite=lax" in cookie.lower()
    assert "Secure" not in cookie  # plain HTTP here; under TLS the flag is set
    assert fresh.cookies.get("shipyard_session") != anonymous  # no session fixation
    assert "vic · viewer" in fresh.get("/runs").text
    signed_in = client_for("admin").get("/audit", params={"action": "ui.sign_in", "actor": "vic"})
    assert "<td>ok</td>" in signed_in.text  # sign-ins are audited


def test_a_bad_token_is_refused_and_audited(fresh: TestClient, client_for: ClientFor) -> None:
    page = fresh.get("/login")
    answer = fresh.post(
        "/login", data={"token": "sy_000000000000_" + "x" * 43, "csrf": csrf_of(page.text)}
    )
    assert answer.status_code == 401
    assert "not accepted" in answer.text
    assert fresh.get("/runs", follow_redirects=False).status_code == 303
    audit = client_for("admin").get("/audit?action=ui.sign_in").text
    assert "denied" in audit


def test_next_never_leaves_the_site(fresh: TestClient, env: Env) -> None:
    page = fresh.get("/login")
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        answer = fresh.post(
            "/login",
            data={
                "token": env.tokens["viewer"],
                "csrf": csrf_of(fresh.get("/login").text),
                "next": target,
            },
            follow_redirects=False,
        )
        assert answer.headers["location"] == "/runs"
    assert page.status_code == 200


@pytest.mark.parametrize("csrf", [None, "", "wrong"])
def test_a_post_without_the_sessions_csrf_token_is_403(
    client_for: ClientFor, env: Env, csrf: str | None
) -> None:
    client = client_for("data-scientist")
    data = {"text": "forged"} if csrf is None else {"text": "forged", "csrf": csrf}
    answer = client.post(f"/runs/{env.runs['train-1']}/notes", data=data)
    assert answer.status_code == 403
    assert "CSRF" in answer.text
    assert "forged" not in client.get(f"/runs/{env.runs['train-1']}").text


def test_login_itself_needs_the_csrf_token(fresh: TestClient, env: Env) -> None:
    fresh.get("/login")
    answer = fresh.post("/login", data={"token": env.tokens["admin"]}, follow_redirects=False)
    assert answer.status_code == 403


def test_a_note_with_the_token_is_written_and_audited(client_for: ClientFor, env: Env) -> None:
    client = client_for("data-scientist")
    run = env.runs["train-2"]
    page = client.get(f"/runs/{run}")
    answer = client.post(
        f"/runs/{run}/notes",
        data={"text": "looks good"},
        headers={"X-CSRF-Token": csrf_of(page.text), "HX-Request": "true"},
    )
    assert answer.status_code == 200
    assert "looks good" in answer.text
    assert f"run:{run}" in client_for("admin").get("/audit?action=runs.write").text


def test_a_viewer_sees_no_write_controls_and_cannot_write(client_for: ClientFor, env: Env) -> None:
    viewer = client_for("viewer")
    page = viewer.get(f"/runs/{env.runs['train-0']}")
    assert page.status_code == 200
    assert 'id="note-form"' not in page.text
    assert "<textarea" not in page.text
    forged = viewer.post(
        f"/runs/{env.runs['train-0']}/notes",
        data={"text": "viewer note", "csrf": csrf_of(page.text)},
    )
    assert forged.status_code == 403
    assert "viewer" in forged.text
    assert 'id="note-form"' in client_for("data-scientist").get(f"/runs/{env.runs['train-0']}").text


def test_the_audit_log_is_for_admins_only(client_for: ClientFor) -> None:
    assert client_for("ml-engineer").get("/audit").status_code == 403
    assert 'href="/audit"' not in client_for("ml-engineer").get("/runs").text
    assert client_for("admin").get("/audit").status_code == 200
    assert 'href="/audit"' in client_for("admin").get("/runs").text


def test_every_page_has_the_csp_and_no_inline_script_or_style(
    client_for: ClientFor, env: Env
) -> None:
    client = client_for("admin")
    pages = [
        "/login",
        "/runs",
        "/experiments",
        f"/runs/{env.runs['train-0']}",
        f"/compare?run={env.runs['train-0']}&run={env.runs['train-1']}",
        "/models",
        "/models/churn",
        "/datasets",
        "/audit",
        "/reviews",
        "/activity",
        "/monitoring",
        "/cost",
    ]
    for url in pages:
        answer = client.get(url)
        assert answer.status_code == 200, url
        assert answer.headers["content-security-policy"] == CSP
        assert "'unsafe-inline'" not in CSP
        assert "script-src 'self'" in CSP
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-frame-options"] == "DENY"
        html = answer.text
        for script in re.findall(r"<script\b[^>]*>", html):
            assert "src=" in script, f"inline script on {url}: {script}"
        assert not re.search(r"\son[a-z]+\s*=", html), f"inline event handler on {url}"
        assert not re.search(r"\sstyle\s*=", html), f"inline style on {url}"


def test_artifacts_are_sandboxed(client_for: ClientFor, env: Env) -> None:
    client = client_for("viewer")
    report = client.get(f"/runs/{env.runs['train-0']}/artifacts/report.html")
    assert report.status_code == 200
    assert report.headers["content-security-policy"].startswith("sandbox;")
    assert client.get(f"/runs/{env.runs['train-0']}/artifacts/../../etc/passwd").status_code == 404
    assert client.get(f"/runs/{env.runs['train-0']}/artifacts/nope").status_code == 404


def test_static_files_are_only_the_shipped_ones(fresh: TestClient) -> None:
    assert fresh.get("/static/vendor/htmx.min.js").status_code == 200
    assert fresh.get("/static/app.js").headers["content-type"].startswith("text/javascript")
    for bad in ("../app.py", "..%2fapp.py", "vendor/README.md", "/etc/passwd", "app.js%00"):
        assert fresh.get(f"/static/{bad}").status_code == 404


def test_user_strings_are_escaped_everywhere(client_for: ClientFor, env: Env) -> None:
    client = client_for("admin")
    pages = [
        client.get(f"/runs/{env.xss_run}").text,
        client.get(
            "/runs/table?col=params.p0&col=params.p1&col=params.p2&filter=name+%3D+%27xss%27"
        ).text,
        client.get(f"/compare?run={env.xss_run}&run={env.runs['train-0']}&all=1").text,
        client.get("/models/churn").text,
    ]
    body = "\n".join(pages)
    for payload in XSS_PAYLOADS:
        assert str(escape(payload)) in pages[0], f"not shown escaped: {payload}"
        if "<" in payload:  # (a pre-escaped payload reads like the escaped form of another)
            assert payload not in body, f"unescaped: {payload}"
    assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in pages[0]
    assert "{{7*7}}" in pages[0]
    assert ">49<" not in pages[0]
    assert "&lt;b&gt;v&lt;/b&gt; &amp; co" in pages[3]


def test_a_bad_filter_says_why_in_place(client_for: ClientFor) -> None:
    answer = client_for("viewer").get("/runs/table?filter=metrics.auc+%3E%3E+1")
    assert answer.status_code == 200
    assert 'id="filter-error"' in answer.text


def test_over_tls_the_cookie_is_secure_and_hsts_is_sent(app: object, env: Env) -> None:
    with TestClient(app, base_url="https://testserver") as client:  # type: ignore[arg-type]
        page = client.get("/login")
        assert "max-age" in page.headers["strict-transport-security"]
        assert "Secure" in page.headers["set-cookie"]
        answer = client.post(
            "/login",
            data={"token": env.tokens["viewer"], "csrf": csrf_of(page.text)},
            follow_redirects=False,
        )
        assert "Secure" in answer.headers["set-cookie"]
