"""The web UI in a real browser: Debian's headless Chromium, driven by Playwright, against a
real ``shipyard ui`` process on 127.0.0.1.

One browser for the module (a context per user). Any console error or uncaught page error —
a CSP violation included — fails the test that caused it. Every page visited is screenshotted
into a temporary folder (``SHIPYARD_UI_SCREENSHOTS=<dir>`` keeps them, e.g. for docs/).
Without ``/usr/bin/chromium`` the tests skip with the reason (``make test`` installs it with
apt-get first), unless ``SHIPYARD_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REQUIRE_SERVICES
from tests.unit.ui.env import Env, build

CHROMIUM = Path("/usr/bin/chromium")
SHIPYARD = Path(sys.executable).with_name("shipyard")
READY_S = 120.0
WAIT_MS = 30_000

pytestmark = pytest.mark.slow


@dataclass
class Served:
    url: str
    env: Env
    shots: Path


@dataclass
class Tab:
    """A signed-in page and the console errors it has seen."""

    page: Any
    errors: list[str] = field(default_factory=list)

    def clean(self, *expected: str) -> None:
        """Fail on any console error but those ``expected`` (each of which must be there)."""
        for text in expected:
            assert any(text in e for e in self.errors), f"no console error says {text!r}"
        unexpected = [e for e in self.errors if not any(t in e for t in expected)]
        assert not unexpected, f"browser console errors: {unexpected}"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: apt-get install -y chromium (make test does)"
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)
    project = tmp_path_factory.mktemp("ui-browser")
    env = build(project, model=True)
    port = _port()
    log = project / "ui.log"
    child_env = {**os.environ, "SHIPYARD_PROJECT_DIR": str(project)}
    with log.open("w") as sink:
        process = subprocess.Popen(
            [str(SHIPYARD), "ui", "--port", str(port)],
            cwd=project, env=child_env, stdout=sink, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + READY_S
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"shipyard ui did not get ready: {log.read_text()}")
        time.sleep(0.1)
    kept = os.environ.get("SHIPYARD_UI_SCREENSHOTS")
    shots = Path(kept) if kept else tmp_path_factory.mktemp("ui-screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    try:
        yield Served(url, env, shots)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="module")
def browser(served: Served) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"]
        )
        yield chromium
        chromium.close()


def _tab(browser: Any, served: Served, role: str) -> Iterator[Tab]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(WAIT_MS)
    # A CSP violation is a console error already; this names the offending code in the report.
    context.add_init_script(
        "document.addEventListener('securitypolicyviolation', e => console.error("
        "'CSP', e.violatedDirective, e.sourceFile, e.lineNumber, e.columnNumber, e.sample))"
    )
    page = context.new_page()
    tab = Tab(page)
    page.on(
        "console",
        lambda m: (
            tab.errors.append(f"{page.url}: {m.text} at {m.location.get('url')}")
            if m.type == "error"
            else None
        ),
    )
    page.on("pageerror", lambda e: tab.errors.append(str(e)))
    page.goto(f"{served.url}/runs")
    assert "/login" in page.url
    page.fill("#token", served.env.tokens[role])
    page.click("#sign-in")
    page.wait_for_url(f"{served.url}/runs")
    try:
        yield tab
    finally:
        context.close()


@pytest.fixture
def admin(browser: Any, served: Served) -> Iterator[Tab]:
    yield from _tab(browser, served, "admin")


@pytest.fixture
def viewer(browser: Any, served: Served) -> Iterator[Tab]:
    yield from _tab(browser, served, "viewer")


def _shot(tab: Tab, served: Served, name: str) -> None:
    tab.page.screenshot(path=str(served.shots / f"{name}.png"), full_page=False)


def _charts_drawn(tab: Tab) -> None:
    # Selectors, not wait_for_function: polling a script would need eval, which the CSP bans.
    tab.page.wait_for_selector(".chart[data-ready]")
    tab.page.wait_for_selector(".chart:not([data-ready])", state="detached")
    failed = tab.page.locator('.chart[data-ready="error"]').count()
    assert failed == 0
    assert tab.page.locator(".chart canvas").count() >= 1


def test_sign_in_filter_open_a_run_and_compare_three(admin: Tab, served: Served) -> None:
    page = admin.page
    assert "alice · admin" in page.inner_text("#who")
    _shot(admin, served, "runs")
    page.evaluate("window.__sameDocument = true")  # a full reload would forget it
    page.fill("#filter", "params.model = 'lgbm'")
    page.press("#filter", "Enter")
    page.wait_for_selector("#run-count:text-matches('^2 runs')")
    assert page.evaluate("window.__sameDocument") is True  # updated in place, no reload
    assert "filter=params.model" in page.url  # the view is in the URL, to share
    page.click("text=train-1")
    page.wait_for_selector("#run-name")
    _charts_drawn(admin)
    _shot(admin, served, "run")
    page.go_back()
    page.goto(f"{served.url}/runs?order=name+asc&filter=experiment+%3D+%27churn%27")
    for name in ("train-0", "train-1", "train-2"):
        page.check(f'input[aria-label="select {name}"]')
    assert page.inner_text("#compare-button") == "Compare selected (3)"
    page.click("#compare-button")
    page.wait_for_selector("#param-diff")
    assert "Compare 3 runs" in page.inner_text("h1")
    _charts_drawn(admin)
    _shot(admin, served, "compare")
    admin.clean()


def test_models_datasets_monitoring_cost_and_audit_pages(admin: Tab, served: Served) -> None:
    page = admin.page
    page.goto(f"{served.url}/models/churn")
    page.wait_for_selector("#test-metrics")
    _shot(admin, served, "model")
    page.goto(f"{served.url}/datasets")
    page.click("#datasets a >> nth=0")
    page.wait_for_selector("#lineage")
    _shot(admin, served, "dataset")
    page.goto(f"{served.url}/monitoring?model=churn")
    _charts_drawn(admin)
    _shot(admin, served, "monitoring")
    page.goto(f"{served.url}/cost")
    page.wait_for_selector("#budgets")
    _shot(admin, served, "cost")
    page.goto(f"{served.url}/audit")
    assert page.locator("#audit tbody tr").count() > 3
    _shot(admin, served, "audit")
    admin.clean()


def test_user_strings_never_run_as_script(admin: Tab, served: Served) -> None:
    page = admin.page
    page.goto(f"{served.url}/runs/{served.env.xss_run}")
    page.wait_for_selector("#params")
    page.goto(f"{served.url}/runs/{served.env.runs['train-0']}")  # the sandboxed HTML report
    page.wait_for_selector("iframe.preview")
    page.wait_for_timeout(300)  # let the frame load; its script must not run
    assert page.evaluate("window.__xss") is None
    # The report's own script was stopped by the frame's sandbox: the browser says so.
    admin.clean("Blocked script execution in")


def test_a_note_is_added_in_place(browser: Any, served: Served) -> None:
    for tab in _tab(browser, served, "data-scientist"):
        page = tab.page
        page.goto(f"{served.url}/runs/{served.env.runs['train-3']}")
        page.evaluate("window.__sameDocument = true")
        page.fill("#note-text", "ship it after the drift check")
        page.click("#add-note")
        page.wait_for_selector("text=ship it after the drift check")
        assert page.evaluate("window.__sameDocument") is True
        # The same browser's cookie without the page's CSRF token: refused.
        forged = page.request.post(
            f"{served.url}/runs/{served.env.runs['train-3']}/notes", form={"text": "forged"}
        )
        assert forged.status == 403
        assert "CSRF" in forged.text()
        tab.clean()


def test_a_viewer_sees_no_write_controls_and_a_forged_post_is_refused(
    viewer: Tab, served: Served
) -> None:
    page = viewer.page
    run = served.env.runs["train-1"]
    page.goto(f"{served.url}/runs/{run}")
    page.wait_for_selector("#notes")
    assert page.locator("#note-form").count() == 0
    assert page.locator("textarea").count() == 0
    assert page.locator('a[href="/audit"]').count() == 0
    # The browser's own cookie, posting what the page would not offer: refused.
    forged = page.request.post(f"{served.url}/runs/{run}/notes", form={"text": "forged"})
    assert forged.status == 403
    assert "forged" not in page.request.get(f"{served.url}/runs/{run}").text()
    _shot(viewer, served, "run-as-viewer")
    viewer.clean()


def test_comment_request_refuse_own_approval_approve_and_see_the_alias_move(
    browser: Any, served: Served
) -> None:
    """The teamwork flow: comment with a mention, four-eyes promotion, the alias and audit."""
    run = served.env.runs["train-1"]
    for mel in _tab(browser, served, "ml-engineer"):
        page = mel.page
        page.goto(f"{served.url}/runs/{run}")
        page.evaluate("window.__sameDocument = true")
        page.fill("#comment-body", "**drift** looks fine; @dana can you check the *lr*?")
        page.click("#add-comment")
        page.wait_for_selector("#comments strong:text('drift')")
        assert "mentions dana" in page.inner_text("#comments")
        assert page.evaluate("window.__sameDocument") is True  # swapped in place
        _shot(mel, served, "run-comments")
        page.goto(f"{served.url}/models/churn?version=2")
        page.select_option("#promotion-alias", "production")
        page.fill("#promotion-reason", "v2 uses every feature")
        page.click("#request-promotion-button")
        page.wait_for_selector("#review-gate")
        review = page.url
        assert "/reviews/" in review
        assert page.inner_text("#review-state") == "open"
        assert page.locator("#own-request").count() == 1
        _shot(mel, served, "review")
        page.fill("#approve-comment", "my own")
        page.click("#approve")
        page.wait_for_selector("#review-error")
        assert "another person" in page.inner_text("#review-error")
        assert page.inner_text("#review-state") == "open"
        _shot(mel, served, "review-own-refused")
        mel.clean("403")  # the refusal's status, which the browser reports
    for alice in _tab(browser, served, "admin"):
        page = alice.page
        page.goto(review)
        page.fill("#approve-comment", "checked the intervals, **go**")
        page.click("#approve")
        page.wait_for_selector("#review-state:text('approved')")
        assert "go" in page.inner_text("#review-decisions")
        _shot(alice, served, "review-approved")
        page.goto(f"{served.url}/models")
        assert "production → v2" in page.inner_text("main")
        page.goto(f"{served.url}/audit?action=models.approve")
        assert "churn@production" in page.inner_text("#audit")
        _shot(alice, served, "audit-approval")
        page.goto(f"{served.url}/activity")
        assert page.locator("#activity tbody tr").count() > 3
        _shot(alice, served, "activity")
        alice.clean()
