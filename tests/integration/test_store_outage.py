"""A PostgreSQL outage speaks Shipyard: ``StoreUnavailable``, never the driver's own error.

The workspace reaches a real PostgreSQL through a TCP proxy that the test cuts (issue 14,
item 6): every open connection drops and new ones are refused. Logging a param, flushing
metrics and reading the run must raise ``StoreUnavailable`` with what to do; once the proxy
listens again, the same workspace works without being reopened.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from shipyard.core.errors import StoreUnavailable, Unavailable
from shipyard.core.settings import load_settings
from shipyard.track.workspace import Workspace
from tests.proxy import TcpProxy, proxied

pytestmark = pytest.mark.postgres


@pytest.fixture
def proxy(pg_url: str) -> Iterator[TcpProxy]:
    url = sa.make_url(pg_url)
    with proxied(url.host or "127.0.0.1", url.port or 5432) as proxy:
        yield proxy


@pytest.fixture
def workspace(pg_url: str, proxy: TcpProxy, tmp_path: Path) -> Iterator[Workspace]:
    url = sa.make_url(pg_url).set(host="127.0.0.1", port=proxy.port)
    settings = load_settings(
        project_dir=tmp_path,
        store_url=url.render_as_string(hide_password=False),
        artifact_root=str(tmp_path / "artifacts"),
        tracking={"flush_interval_s": 60, "heartbeat_interval_s": 60},
    )
    ws = Workspace(settings)
    yield ws
    proxy.restore()
    ws.close()


def _is_shipyards(error: BaseException) -> None:
    assert isinstance(error, StoreUnavailable), type(error)
    assert not isinstance(error, SQLAlchemyError)
    assert "check that it is running" in str(error)


def test_log_param_flush_and_reads_raise_unavailable_while_cut(
    workspace: Workspace, proxy: TcpProxy
) -> None:
    run = workspace.start_run(name="outage")
    run.log_param("lr", 0.1)
    run.log_metric("loss", 1.0)
    run.flush()

    proxy.cut()
    with pytest.raises(Unavailable) as param:
        run.log_param("depth", 3)
    _is_shipyards(param.value)

    run.log_metric("loss", 0.5)  # buffered: the outage shows at flush
    with pytest.raises(Unavailable) as flushed:
        run.flush()
    _is_shipyards(flushed.value)

    with pytest.raises(Unavailable) as read:
        workspace.get_run(run.run_id)
    _is_shipyards(read.value)

    proxy.restore()
    run.log_param("depth", 3)
    run.flush()  # the value kept through the outage is written now
    stored = workspace.get_run(run.run_id)
    assert stored.params == {"lr": "0.1", "depth": "3"}
    assert stored.metrics["loss"] == 0.5
    run.end()


def test_a_store_down_from_the_start_is_unavailable(pg_url: str, tmp_path: Path) -> None:
    with proxied("127.0.0.1", 5432) as proxy:
        proxy.cut()
        url = sa.make_url(pg_url).set(host="127.0.0.1", port=proxy.port)
        with pytest.raises(Unavailable) as opened:
            Workspace.open(tmp_path, store_url=url.render_as_string(hide_password=False))
    _is_shipyards(opened.value)
