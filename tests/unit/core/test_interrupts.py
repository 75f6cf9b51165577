"""A graceful stop waits for the store's write transaction to end (``core/interrupts.py``).

Raised mid-statement, SIGTERM's ``Terminated`` once left SQLite's write lock held by the
interrupted connection, and the write that ends the run ``killed`` waited on the process's own
lock until the busy timeout (the SIGTERM test of ``test_tracking_processes`` hung).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from shipyard.store.engine import create_store_engine, write_connection
    from shipyard.track import signals

    signals.install()
    engine = create_store_engine(f"sqlite:///{sys.argv[1]}")
    with write_connection(engine) as c:
        c.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    try:
        with write_connection(engine) as c:
            c.exec_driver_sql("INSERT INTO t VALUES (1)")
            os.kill(os.getpid(), signal.SIGTERM)
            c.exec_driver_sql("INSERT INTO t VALUES (2)")
            print("the transaction ran to its end", flush=True)
    except signals.Terminated:
        print("terminated after it", flush=True)
    with write_connection(engine) as c:  # the lock is free: no wait on our own transaction
        c.exec_driver_sql("INSERT INTO t VALUES (3)")
    with engine.connect() as c:
        print(sorted(r[0] for r in c.exec_driver_sql("SELECT x FROM t")), flush=True)
    """
)


def test_sigterm_inside_a_write_is_raised_when_the_transaction_has_committed(
    tmp_path: Path,
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "s.db")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "the transaction ran to its end",
        "terminated after it",
        "[1, 2, 3]",
    ]


def test_outside_a_write_the_stop_is_not_held_back(tmp_path: Path) -> None:
    child = textwrap.dedent(
        """
        import os, signal
        from shipyard.track import signals

        signals.install()
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):
                pass
            print("not stopped", flush=True)
        except signals.Terminated:
            print("stopped at once", flush=True)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", child], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.stdout.strip() == "stopped at once", done.stderr
