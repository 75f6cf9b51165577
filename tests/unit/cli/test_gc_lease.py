"""``shipyard gc`` holds the workspace's gc lease: a second collector is refused (issue 20)."""

from __future__ import annotations

import pytest

from shipyard.cli.main import run
from shipyard.cost.blob_gc import GC_LEASE
from shipyard.store.leases import LeaseStore
from shipyard.track.workspace import Workspace


def _succeeds(*args: str) -> None:
    with pytest.raises(SystemExit) as done:
        run(list(args))
    assert done.value.code == 0


def test_gc_is_refused_while_another_holds_the_lease_and_runs_once_it_is_free(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with Workspace.open() as workspace:
        leases = LeaseStore(workspace.store, workspace.clock)
        leases.acquire(GC_LEASE, "other-host:42:abcd", 600_000)
        with pytest.raises(SystemExit) as refused:
            run(["gc"])
        assert refused.value.code == 2
        err = capsys.readouterr().err
        assert "another `shipyard gc` is running" in err
        assert "other-host:42:abcd" in err

        _succeeds("gc", "--dry-run")  # changes nothing: no lease needed
        leases.release(GC_LEASE, "other-host:42:abcd")
        _succeeds("gc")
        lease = leases.current(GC_LEASE)
        assert lease is not None
        assert lease.holder != "other-host:42:abcd"
        assert lease.expires_ms <= workspace.clock.now_ms()  # released when done
