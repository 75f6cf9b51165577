"""The blob collector SIGKILLed at each of its steps loses nothing that is referenced.

A subprocess runs ``collect_garbage`` with ``SHIPYARD_FAULT=<point>:kill``; afterwards every blob a
run, dataset or model version refers to is read back and re-hashed, the production alias still
loads, and a rerun in this process finishes the job (RELIABILITY.md invariants 1 and 2).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import sqlalchemy as sa

from shipyard.core.faults import ENV_VAR
from shipyard.cost.blob_gc import collect_garbage
from shipyard.data.datasets import write_dataset
from shipyard.registry.registry import ModelRegistry
from shipyard.security.audit_chain import security_store
from shipyard.store.blob_refs import BlobRefs
from shipyard.store.cost_models import GcSweepRow
from shipyard.track.workspace import Workspace
from tests.identities import OPERATOR
from tests.unit.registry.bundles import WEAK, bundle_bytes

_COLLECTOR = """
import sys
from shipyard.cost.blob_gc import collect_garbage
from shipyard.track.workspace import Workspace
from shipyard.security.audit_chain import security_store
from shipyard.security.identities import local_identity
with Workspace.open(sys.argv[1]) as workspace:
    log = security_store(workspace.settings, workspace.store)
    collect_garbage(workspace, audit_log=log, grace_s=0, actor=local_identity("project"))
print("finished")
"""


def populate(project: Path) -> set[str]:
    """A model with a production version, a dataset, run artifacts and five orphan blobs."""
    with Workspace.open(project) as workspace:
        registry = ModelRegistry.for_workspace(workspace)
        test = write_dataset(workspace, pl.DataFrame({"x": [1, 2, 3]}), name="d").dataset_id
        for i, features in enumerate([None, WEAK["binary"]]):
            data = bundle_bytes(project, features=features, test_dataset=test, name=f"b{i}")
            registry.register("cancer", data, actor=OPERATOR)
        registry.promote("cancer", 1, force=True, reason="ship", actor=OPERATOR)
        with workspace.start_run() as run:
            run.log_artifact(b"plot bytes", name="plot.png")
        return {workspace.blobs.put_bytes(f"orphan {i}".encode()).digest for i in range(5)}


def live_references_readable(workspace: Workspace) -> None:
    digests = {r.digest for r in BlobRefs(workspace.store).live()}
    assert len(digests) == 4  # two bundles, one dataset, one artifact
    for digest in digests:
        assert workspace.blobs.verify(digest), digest
    assert (
        ModelRegistry.for_workspace(workspace).load("cancer@production").manifest.task == "binary"
    )


@pytest.mark.slow  # a subprocess imports the whole package (~3 s)
@pytest.mark.parametrize("point", ["gc.after_mark", "gc.after_delete", "gc.after_chunk"])
def test_sigkill_during_gc_keeps_every_referenced_blob_and_a_rerun_completes(
    tmp_path: Path, point: str
) -> None:
    orphans = populate(tmp_path)
    result = subprocess.run(
        [sys.executable, "-c", _COLLECTOR, str(tmp_path)],
        env={**os.environ, ENV_VAR: f"{point}:kill"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert "finished" not in result.stdout

    with Workspace.open(tmp_path) as workspace:
        live_references_readable(workspace)
        left = orphans & set(workspace.blobs.iter_digests())
        if point == "gc.after_mark":
            assert left == orphans
        else:  # killed after the first delete (or after the whole chunk)
            assert len(left) == (4 if point == "gc.after_delete" else 0)
        report = collect_garbage(
            workspace,
            audit_log=security_store(workspace.settings, workspace.store),
            grace_s=0,
            actor=OPERATOR,
        )
        assert set(report.deleted) == left
        assert report.missing == []
        assert not orphans & set(workspace.blobs.iter_digests())
        live_references_readable(workspace)
        with workspace.store.engine.connect() as c:
            statuses = sorted(c.execute(sa.select(GcSweepRow.status)).scalars())
        assert statuses == ["abandoned", "done"]
