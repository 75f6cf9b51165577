"""``shipyard dr drill`` end to end: back up a workspace with a production model, rehearse.

The drill restores the newest backup into a scratch folder, checks the invariants there, loads
``churn@production`` from the restored registry and scores the rows stored at backup time; it
must pass on a good backup and exit non-zero, naming the file, on a damaged one.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shipyard.track.workspace import Workspace
from tests.backups import populate
from tests.unit.cli.running import cli

pytestmark = pytest.mark.slow


def test_the_drill_passes_on_a_good_backup_and_fails_on_a_damaged_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Workspace.open(tmp_path) as ws:
        populate(ws, tmp_path)

    created = cli(capsys, "backup", "create", "--json")
    assert created.code == 0, created.err
    backup = Path(json.loads(created.out)["backup"])

    drill = cli(capsys, "dr", "drill", "--json")
    assert drill.code == 0, drill.out + drill.err
    report = json.loads(drill.out)
    checks = {c["name"]: c for c in report["checks"]}
    assert report["ok"], report
    assert {
        "restore",
        "registry versions and aliases",
        "referenced blobs and hashes",
        "audit chain",
        "churn@production",
    } <= set(checks)
    assert "20 rows scored" in checks["churn@production"]["detail"]
    assert checks["registry versions and aliases"]["detail"] == "1 versions, 1 aliases"
    assert report["recovery_time_s"] > 0
    assert 0 <= report["recovery_point_s"] < 600

    table = cli(capsys, "dr", "drill")
    assert table.code == 0
    assert "recovery time" in table.out
    assert "recovery point" in table.out

    key = tmp_path / ".shipyard" / "keys" / "audit.key"
    key.rename(tmp_path / "audit.key.away")  # the drill needs the key kept apart from backups
    keyless = cli(capsys, "dr", "drill", "--json")
    assert keyless.code == 1
    (audit,) = (c for c in json.loads(keyless.out)["checks"] if c["name"] == "audit chain")
    assert not audit["ok"]
    assert "key" in audit["detail"]
    (tmp_path / "audit.key.away").rename(key)

    (reference,) = (backup / "extra").glob("reference-*.parquet")
    reference.write_bytes(reference.read_bytes()[:-10])
    failed = cli(capsys, "dr", "drill", "--json")
    assert failed.code == 1
    restore = json.loads(failed.out)["checks"][0]
    assert restore["name"] == "restore"
    assert not restore["ok"]
    assert reference.name in restore["detail"]
