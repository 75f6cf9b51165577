"""The store's boundary translates the driver's errors only: an interrupt passes untouched.

SQLAlchemy calls the engine's ``handle_error`` hook for any exception inside an execution and
treats a ``KeyboardInterrupt`` (or our SIGTERM's ``Terminated``) as a disconnect; translating
those into ``StoreUnavailable`` would turn Ctrl-C and a graceful stop into a store error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from shipyard.core.errors import StoreUnavailable
from shipyard.store.engine import create_store_engine
from shipyard.track.signals import Terminated


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt(), Terminated()])
def test_an_interrupt_during_a_query_is_not_a_store_error(
    tmp_path: Path, interrupt: BaseException
) -> None:
    engine = create_store_engine(f"sqlite:///{tmp_path / 'x.db'}")
    armed = [interrupt]

    @event.listens_for(engine, "before_cursor_execute")
    def _interrupt(*_: Any) -> None:
        if armed:
            raise armed.pop()

    with pytest.raises(type(interrupt)), engine.connect() as c:
        c.execute(sa.text("SELECT 1"))
    with engine.connect() as c:  # and the engine still works
        assert c.execute(sa.text("SELECT 1")).scalar() == 1
    engine.dispose()


def test_an_unopenable_sqlite_file_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "dir.db").mkdir()  # a folder where the database file should be
    engine = create_store_engine(f"sqlite:///{tmp_path / 'dir.db'}")
    with pytest.raises(StoreUnavailable, match="check that it is running"), engine.connect():
        pass
    engine.dispose()


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt(), Terminated()])
def test_an_interrupt_during_the_pre_ping_is_not_hidden_by_the_driver(
    pg_url: str, interrupt: BaseException, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGTERM arriving mid-probe once exited 1 instead of 143 (the run never ended killed).

    The signal leaves the probe's query half-sent; the probe's cleanup (restoring autocommit)
    then fails with a ``ProgrammingError`` that replaced the interrupt.
    """
    import psycopg

    engine = create_store_engine(pg_url)
    with engine.connect():  # one pooled connection, not fresh: the next checkout probes it
        pass
    armed = [interrupt]
    execute = psycopg.Cursor.execute

    def _signal_mid_query(self: psycopg.Cursor[Any], query: Any, *args: Any, **kw: Any) -> Any:
        if armed:
            self.connection.pgconn.send_query(b"SELECT 1")  # sent, never read: as interrupted
            raise armed.pop()
        return execute(self, query, *args, **kw)

    monkeypatch.setattr(psycopg.Cursor, "execute", _signal_mid_query)
    with pytest.raises(type(interrupt)), engine.connect():
        pass
    with engine.connect() as c:  # the half-used connection was dropped; the engine still works
        assert c.execute(sa.text("SELECT 1")).scalar() == 1
    engine.dispose()
