"""Fixtures shared by the whole suite: isolated settings, real PostgreSQL, workspaces.

PostgreSQL tests need the server at ``SHIPYARD_TEST_PG_URL`` (default: the local one with trust
auth). Without it they skip with the reason, unless ``SHIPYARD_REQUIRE_SERVICES=1`` (CI), where
its absence fails them. Each test gets its own database, created and dropped around it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from shipyard.core.settings import load_settings
from shipyard.track.workspace import Workspace

PG_ADMIN_URL = os.environ.get(
    "SHIPYARD_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REQUIRE_SERVICES = os.environ.get("SHIPYARD_REQUIRE_SERVICES") == "1"

# pytest-xdist workers start with COLUMNS=80 and LINES=24 set; rich would fix its consoles'
# size when shipyard.cli is first imported, and the CLI tests that widen the terminal would fail.
for _name in ("COLUMNS", "LINES"):
    os.environ.pop(_name, None)
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep the developer's SHIPYARD_* settings and cwd out of every test."""
    for name in list(os.environ):
        if name.startswith("SHIPYARD_") and name not in (
            "SHIPYARD_REQUIRE_SERVICES",
            "SHIPYARD_TEST_PG_URL",
        ):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SHIPYARD_PROJECT_DIR", str(tmp_path))
    monkeypatch.setenv("SHIPYARD_TRACKING__CAPTURE_GIT", "false")


def _unavailable(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (SHIPYARD_REQUIRE_SERVICES=1, so this is a failure)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[sa.Engine]:
    """An autocommit engine on the PostgreSQL server, for creating test databases."""
    engine = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except Exception as e:  # any failure to reach it means: no PostgreSQL here
        engine.dispose()
        _unavailable(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {type(e).__name__}")
    yield engine
    engine.dispose()


@pytest.fixture
def pg_url(pg_admin: sa.Engine) -> Iterator[str]:
    """The URL of a fresh, empty PostgreSQL database, dropped after the test."""
    name = f"shipyard_test_{uuid.uuid4().hex[:12]}"
    with pg_admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield pg_admin.url.set(database=name).render_as_string(hide_password=False)
    with pg_admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh metadata store URL on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store' / 'shipyard.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def workspace(store_url: str, tmp_path: Path) -> Iterator[Workspace]:
    """A workspace on each backend, with fast flush and heartbeat for tests."""
    settings = load_settings(
        project_dir=tmp_path,
        store_url=store_url,
        artifact_root=str(tmp_path / "artifacts"),
        tracking={"flush_interval_s": 0.05, "heartbeat_interval_s": 0.2},
    )
    ws = Workspace(settings)
    yield ws
    ws.close()
