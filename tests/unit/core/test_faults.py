"""Fault points are inert by default and do exactly what the variable says when armed."""

from __future__ import annotations

import errno
import subprocess
import sys

import pytest

from shipyard.core import faults


def test_unarmed_points_do_nothing() -> None:
    faults.hit("artifact.after_tmp_write")


def test_raise_with_a_named_errno(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(faults.ENV_VAR, "a.point:raise:ENOSPC, other:raise")
    with pytest.raises(OSError, match=r"injected fault at a\.point") as caught:
        faults.hit("a.point")
    assert caught.value.errno == errno.ENOSPC
    with pytest.raises(OSError, match="injected fault at other") as other:
        faults.hit("other")
    assert other.value.errno == errno.EIO
    faults.hit("not.armed")


def test_kill_ends_the_process_with_sigkill() -> None:
    code = "from shipyard.core import faults; faults.hit('p'); print('survived')"
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={"SHIPYARD_FAULT": "p:kill"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == -9
    assert "survived" not in result.stdout
