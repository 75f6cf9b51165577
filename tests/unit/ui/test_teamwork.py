"""The UI's teamwork routes: comments (Markdown, sanitized, @mentions), reviews, the feed.

In-process against the session's project (``env.py``: a review rule on ``production`` and
``staging``; version 2 beats version 1). The four-eyes flow here runs on ``staging`` so that
``production`` stays at version 1 for the other page tests.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from starlette.testclient import TestClient

from tests.corpus import MARKDOWN_XSS_PAYLOADS, XSS_PAYLOADS, live_markup
from tests.unit.ui.conftest import csrf_of
from tests.unit.ui.env import Env

ClientFor = Callable[[str], TestClient]
HTMX = {"HX-Request": "true"}


def _csrf(client: TestClient, path: str = "/runs") -> str:
    return csrf_of(client.get(path).text)


def _section(html: str) -> str:
    """The page's comments section (its end: every page puts it last)."""
    start = html.index('<div id="comments">')
    return html[start : html.index("</main>", start)]


def test_a_comment_is_rendered_as_markdown_with_its_mention(
    client_for: ClientFor, env: Env
) -> None:
    dana = client_for("data-scientist")
    run = env.runs["train-2"]
    answer = dana.post(
        "/comments",
        data={
            "csrf": _csrf(dana),
            "kind": "run",
            "target": run,
            "body": "**looks good**, @mel please check the *lr*",
        },
        headers=HTMX,
    )
    assert answer.status_code == 200
    assert "<strong>looks good</strong>" in answer.text
    assert "mentions mel" in answer.text
    page = client_for("viewer").get(f"/runs/{run}").text
    assert "<strong>looks good</strong>" in _section(page)
    audit = client_for("admin").get("/audit", params={"action": "comments.write"}).text
    assert f"run:{run}" in audit


def test_comments_on_model_and_dataset_versions_and_a_plain_form_goes_back(
    client_for: ClientFor, env: Env
) -> None:
    mel = client_for("ml-engineer")
    token = _csrf(mel)
    answer = mel.post(
        "/comments",
        data={"csrf": token, "kind": "model", "target": "churn:2", "body": "v2 *wins*"},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/models/churn?version=2"
    assert "<em>wins</em>" in _section(mel.get("/models/churn?version=2").text)
    assert "no comments" in _section(mel.get("/models/churn?version=1").text)
    dataset = env.quarantine
    mel.post(
        "/comments",
        data={"csrf": token, "kind": "dataset", "target": dataset, "body": "masked ok"},
    )
    assert "masked ok" in _section(mel.get(f"/datasets/{dataset}").text)
    missing = mel.post(
        "/comments",
        data={"csrf": token, "kind": "run", "target": "0" * 32, "body": "hello"},
        headers=HTMX,
    )
    assert 'id="comment-error"' in missing.text  # said in place; nothing written


def test_xss_payloads_in_comments_are_inert(client_for: ClientFor, env: Env) -> None:
    admin = client_for("admin")
    token = _csrf(admin)
    payloads = [*XSS_PAYLOADS, *MARKDOWN_XSS_PAYLOADS]
    for payload in payloads:
        answer = admin.post(
            "/comments",
            data={"csrf": token, "kind": "run", "target": env.xss_run, "body": payload},
            headers=HTMX,
        )
        assert answer.status_code == 200
        assert not live_markup(answer.text), payload
    section = _section(admin.get(f"/runs/{env.xss_run}").text)
    assert section.count('class="note comment"') >= len(payloads)
    assert not live_markup(section)
    feed = admin.get("/activity").text
    assert not live_markup(feed[feed.index("<main>") :])


def test_writes_without_the_csrf_token_are_403(client_for: ClientFor, env: Env) -> None:
    admin = client_for("admin")
    for path, form in (
        ("/comments", {"kind": "run", "target": env.runs["train-1"], "body": "forged"}),
        ("/reviews", {"model": "churn", "version": "2", "alias": "staging"}),
        ("/reviews/0123456789abcdef0123456789abcdef/approve", {}),
        ("/reviews/0123456789abcdef0123456789abcdef/reject", {"comment": "no"}),
    ):
        answer = admin.post(path, data=form)
        assert answer.status_code == 403, path
        assert "CSRF" in answer.text
    assert "forged" not in admin.get(f"/runs/{env.runs['train-1']}").text


def test_a_viewer_sees_no_teamwork_forms_and_is_refused(client_for: ClientFor, env: Env) -> None:
    vic = client_for("viewer")
    token = _csrf(vic)
    assert 'id="comment-form"' not in vic.get(f"/runs/{env.runs['train-1']}").text
    model = vic.get("/models/churn?version=2").text
    assert 'id="request-promotion"' not in model
    assert 'id="comment-form"' not in model
    for path, form in (
        ("/comments", {"kind": "run", "target": env.runs["train-1"], "body": "hi"}),
        ("/reviews", {"model": "churn", "version": "2", "alias": "staging"}),
        ("/reviews/0123456789abcdef0123456789abcdef/approve", {}),
    ):
        answer = vic.post(path, data={"csrf": token, **form})
        assert answer.status_code == 403, path
        assert "permission denied" in answer.text


def test_four_eyes_from_request_to_alias_move(client_for: ClientFor) -> None:
    mel, dana, admin = client_for("ml-engineer"), client_for("data-scientist"), client_for("admin")
    page = mel.get("/models/churn?version=2").text
    assert 'id="request-promotion"' in page
    asked = mel.post(
        "/reviews",
        data={
            "csrf": csrf_of(page),
            "model": "churn",
            "version": "2",
            "alias": "staging",
            "reason": "beats <v1>",
        },
        follow_redirects=False,
    )
    assert asked.status_code == 303, asked.text
    where = asked.headers["location"]
    request_id = where.rsplit("/", 1)[1]
    detail = mel.get(where).text
    for part in ('id="review-gate"', 'id="review-intervals"', 'id="review-cost"', "&lt;v1&gt;"):
        assert part in detail
    assert not re.search(r"\s(?:style|on[a-z]+)\s*=", detail)  # the CSP allows neither
    assert 'id="own-request"' in detail
    assert 'id="approve-form"' in detail
    listed = admin.get("/reviews", params={"state": "open"}).text
    assert request_id[:8] in listed
    assert request_id[:8] not in admin.get("/reviews", params={"state": "approved"}).text
    assert admin.get("/reviews", params={"state": "bogus"}).status_code == 422
    assert admin.get("/reviews/not-an-id").status_code == 404
    unknown = admin.post(
        "/reviews/0123456789abcdef0123456789abcdef/approve", data={"csrf": _csrf(admin)}
    )
    assert unknown.status_code == 404
    holds = mel.post(
        "/reviews",
        data={"csrf": csrf_of(page), "model": "churn", "version": "1", "alias": "production"},
    )
    assert holds.status_code == 422  # version 1 already holds production: said, not asked
    assert 'id="error-message"' in holds.text

    own = mel.post(f"{where}/approve", data={"csrf": csrf_of(detail), "comment": "mine"})
    assert own.status_code == 403
    assert 'id="review-error"' in own.text
    assert "another person" in own.text
    assert re.search(r'id="review-state"[^>]*>open<', own.text)
    # A data scientist may ask but not approve: the guard refuses before the service.
    assert 'id="approve-form"' not in dana.get(where).text
    assert dana.post(f"{where}/approve", data={"csrf": _csrf(dana)}).status_code == 403
    token = _csrf(admin, where)
    no_reason = admin.post(f"{where}/reject", data={"csrf": token, "comment": " "})
    assert no_reason.status_code == 422  # a rejection needs a comment; still open
    done = admin.post(
        f"{where}/approve", data={"csrf": token, "comment": "ok **go**"}, follow_redirects=False
    )
    assert done.status_code == 303
    closed = admin.get(where).text
    assert re.search(r'id="review-state"[^>]*>approved<', closed)
    assert "<strong>go</strong>" in closed
    assert 'id="approve-form"' not in closed
    assert "staging → v2" in admin.get("/models").text
    audit = admin.get("/audit", params={"action": "models.approve"}).text
    assert "churn@staging" in audit
    feed = admin.get("/activity").text
    assert request_id in feed  # linked from the feed
