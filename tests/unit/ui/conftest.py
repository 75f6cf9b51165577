"""One UI app over one small project (per test process), and a client per role."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from shipyard.ui.app import create_app
from tests.unit.ui.env import PROJECT, Env, build, open_workspace


@pytest.fixture(scope="session")
def env(tmp_path_factory: pytest.TempPathFactory) -> Env:
    return build(tmp_path_factory.mktemp("ui-project"), model=True)


@pytest.fixture(scope="session")
def app(env: Env) -> Iterator[object]:
    workspace = open_workspace(env.project_dir)
    yield create_app(workspace, project=PROJECT)
    workspace.close()


def csrf_of(html: str) -> str:
    """The CSRF token a page carries (its meta tag)."""
    found = re.search(r'<meta name="csrf-token" content="([^"]*)">', html)
    assert found, "the page has no CSRF meta tag"
    return found.group(1)


def sign_in(client: TestClient, token: str) -> TestClient:
    """Sign ``client`` in with ``token`` through the form, as a browser does."""
    page = client.get("/login")
    assert page.status_code == 200
    answer = client.post(
        "/login",
        data={"token": token, "csrf": csrf_of(page.text), "next": "/runs"},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    return client


@pytest.fixture(scope="session")
def client_for(app: object, env: Env) -> Iterator[Callable[[str], TestClient]]:
    """A signed-in client per role (admin, ml-engineer, data-scientist, viewer)."""
    made: dict[str, TestClient] = {}

    def make(role: str) -> TestClient:
        if role not in made:
            made[role] = sign_in(TestClient(app), env.tokens[role])  # type: ignore[arg-type]
        return made[role]

    yield make
    for client in made.values():
        client.close()


@pytest.fixture
def fresh(app: object) -> Iterator[TestClient]:
    """A client that has not signed in."""
    with TestClient(app) as client:  # type: ignore[arg-type]
        yield client


@pytest.fixture(scope="session")
def project_dir(env: Env) -> Path:
    return env.project_dir
