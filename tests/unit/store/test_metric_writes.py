"""Bulk metric writes: COPY and executemany write the same rows, whole or not at all."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from shipyard.store.metric_rows import COPY_MIN_ROWS, latest_by_key, nan_as_null
from shipyard.store.sql import SqlStore
from tests.factories import make_run

# Keys the tracking service would refuse (it allows ASCII names only) but the store must still
# carry byte for byte: COPY's text format escapes tabs, newlines and backslashes.
ODD_KEYS = ["température/µ", "tab\there", "back\\slash", "new\nline", "plain"]
ODD_VALUES = [math.nan, math.inf, -math.inf, 0.0, -1.5e-300, 1.7976931348623157e308, 1 / 3]


def _rows(run_id: str, count: int) -> list[tuple[str, str, float, int, int]]:
    return [
        (run_id, ODD_KEYS[i % len(ODD_KEYS)], ODD_VALUES[i % len(ODD_VALUES)], i, 1_000 + i)
        for i in range(count)
    ]


def _stored(store: SqlStore, run_id: str) -> list[tuple[Any, ...]]:
    with store.engine.connect() as connection:
        metrics = connection.execute(
            sa.text(
                "SELECT key, value, step, timestamp_ms FROM metrics WHERE run_id = :r ORDER BY step"
            ),
            {"r": run_id},
        ).all()
        latest = connection.execute(
            sa.text(
                "SELECT key, value, step, timestamp_ms FROM latest_metrics WHERE run_id = :r "
                "ORDER BY key"
            ),
            {"r": run_id},
        ).all()
    return [tuple(r) for r in metrics] + [("latest", *r) for r in latest]


def test_copy_and_executemany_write_exactly_the_same_rows(store_url: str) -> None:
    store = SqlStore(store_url)
    try:
        big, small = make_run(store, name="big"), make_run(store, name="small")
        count = COPY_MIN_ROWS * 3 + 5
        store.log_metrics(_rows(big, count))  # one batch: COPY on PostgreSQL
        rows = _rows(small, count)
        for start in range(0, count, COPY_MIN_ROWS - 1):  # batches below the COPY threshold
            store.log_metrics(rows[start : start + COPY_MIN_ROWS - 1])
        assert _stored(store, big) == _stored(store, small)
        stored = _stored(store, big)
        assert len(stored) == count + len(ODD_KEYS)
        # NaN is stored as NULL on both backends; infinities and extremes survive exactly.
        by_step = {r[2]: r for r in stored if r[0] != "latest"}
        assert by_step[0][:2] == ("température/µ", None)
        assert by_step[1][1] == math.inf
        assert by_step[2][1] == -math.inf
        assert by_step[5][1] == 1.7976931348623157e308
        assert by_step[6][1] == 1 / 3
        assert {r[0] for r in by_step.values()} == set(ODD_KEYS)
    finally:
        store.close()


def test_one_runs_batch_matches_the_many_runs_path(store_url: str) -> None:
    store = SqlStore(store_url)
    try:
        one, many = make_run(store, name="one"), make_run(store, name="many")
        rows = _rows(one, COPY_MIN_ROWS * 2)
        values = [r[1:] for r in rows]
        latest = [r[1:] for r in latest_by_key(rows).values()]
        store.log_run_metrics(one, values, latest)
        store.log_metrics(_rows(many, COPY_MIN_ROWS * 2))
        assert _stored(store, one) == _stored(store, many)
    finally:
        store.close()


def test_a_failure_inside_a_batch_writes_none_of_it(store_url: str) -> None:
    store = SqlStore(store_url)
    try:
        run_id = make_run(store)
        store.log_metrics(_rows(run_id, 3))
        before = _stored(store, run_id)
        bad = _rows(run_id, COPY_MIN_ROWS * 4)
        bad[-1] = (None, "plain", 1.0, 10**6, 10**6)  # type: ignore[assignment]  # NOT NULL
        with pytest.raises(sa.exc.IntegrityError):
            store.log_metrics(bad)
        assert _stored(store, run_id) == before
    finally:
        store.close()


_CRASHING_WRITER = """
import os, signal, sys
import psycopg
from sqlalchemy import event
from shipyard.store.sql import SqlStore

store = SqlStore(sys.argv[1])
run_id = sys.argv[2]
armed = False


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


# The kill lands inside the driver while it is sending the rows: SQLite's progress handler runs
# every few hundred VM steps of the executemany; on PostgreSQL, halfway through the COPY.
@event.listens_for(store.engine, "connect")
def _on_connect(dbapi_connection, _record):
    if hasattr(dbapi_connection, "set_progress_handler"):
        steps = iter(range(10**9))
        dbapi_connection.set_progress_handler(
            lambda: die() if armed and next(steps) == 50 else 0, 500
        )


write_row = psycopg.Copy.write_row


def dying_write_row(self, row):
    if row[3] == 2500:
        die()
    return write_row(self, row)


psycopg.Copy.write_row = dying_write_row
store.engine.dispose()  # new connections get the handler
rows = [(run_id, "m", float(i), i, i) for i in range(5000)]
armed = True
store.log_metrics(rows)
print("not killed")
"""


def test_a_process_killed_mid_flush_leaves_nothing_behind(store_url: str, tmp_path: Path) -> None:
    store = SqlStore(store_url)
    try:
        run_id = make_run(store)
        store.log_metrics(_rows(run_id, 3))
        before = _stored(store, run_id)
        child = subprocess.run(
            [sys.executable, "-c", _CRASHING_WRITER, store_url, run_id],
            capture_output=True,
            text=True,
            timeout=180,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
            cwd=tmp_path,
        )
        assert child.returncode == -signal.SIGKILL, child.stderr
        assert _stored(store, run_id) == before
        store.log_metrics(_rows(run_id, 10)[3:])  # the store is still writable afterwards
        assert store.count_metrics([run_id]) == 10
    finally:
        store.close()


def test_latest_by_key_in_order_and_out_of_order() -> None:
    rows = [("r", "a", 1.0, 0, 10), ("r", "b", 2.0, 0, 11), ("r", "a", 3.0, 1, 12)]
    assert latest_by_key(rows) == {("r", "a"): rows[2], ("r", "b"): rows[1]}
    shuffled = [rows[2], rows[1], rows[0], ("r", "a", 4.0, 1, 12)]
    # Highest step, then highest timestamp, then the later row on a full tie.
    assert latest_by_key(shuffled) == {("r", "a"): shuffled[3], ("r", "b"): rows[1]}


def test_nan_as_null_copies_only_when_needed() -> None:
    clean = [("r", "a", 1.0, 0, 0), ("r", "a", math.inf, 1, 0)]
    assert nan_as_null(clean) is clean
    mixed = [("r", "a", math.inf, 0, 0), ("r", "a", -math.inf, 1, 0), ("r", "a", 2.0, 2, 0)]
    assert nan_as_null(mixed) == mixed  # inf + -inf sums to NaN; nothing was NaN
    assert nan_as_null([("r", "a", math.nan, 0, 0)]) == [("r", "a", None, 0, 0)]
