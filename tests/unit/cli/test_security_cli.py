"""``shipyard users|tokens|roles|audit`` and the CLI's permission checks, on the embedded store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import typer.main

from shipyard.cli import main
from shipyard.core.error_status import status_of
from shipyard.core.errors import IntegrityFailure
from shipyard.registry.registry import ModelRegistry
from shipyard.security.permissions import command_action
from shipyard.track.workspace import Workspace
from tests.unit.cli.running import subcommands
from tests.unit.cli.test_models import cli
from tests.unit.registry.trained import cached_bundle_file as bundle_file


def _commands(group: Any, prefix: str = "") -> list[str]:
    found = []
    for name, command in subcommands(group):
        path = f"{prefix} {name}".strip()
        if hasattr(command, "commands"):  # a group (typer may vendor its own click)
            found += _commands(command, path)
        else:
            found.append(path)
    return found


def test_every_cli_command_has_a_permission_table_entry() -> None:
    commands = _commands(typer.main.get_group(main.app))
    assert "models promote" in commands
    assert "audit verify" in commands
    missing = [c for c in commands if command_action(c) is None]
    assert missing == [], f"CLI commands without a permission-table entry: {missing}"


def _token(capsys, *args: str) -> str:
    code, out, err = cli(capsys, "tokens", "create", *args)
    assert code == 0, err
    return out.strip().splitlines()[-1]


def test_bootstrap_then_a_viewer_cannot_promote(capsys, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    admin = _token(capsys, "--user", "admin", "--role", "admin")
    viewer = _token(capsys, "--user", "vera", "--role", "viewer")
    assert admin.startswith("sy_")
    with Workspace.open(tmp_path) as workspace:
        path = bundle_file(workspace, tmp_path, name="good")
    assert cli(capsys, "models", "register", "churn", str(path))[0] == 0
    assert cli(capsys, "models", "register", "churn", str(path), "--key", "again")[0] == 0
    assert cli(capsys, "models", "promote", "churn", "1")[0] == 0

    monkeypatch.setenv("SHIPYARD_TOKEN", viewer)
    code, _, err = cli(capsys, "models", "promote", "churn", "2", "--force", "--reason", "x")
    assert code == 77  # EX_NOPERM (shipyard.core.error_status)
    assert "permission denied" in err
    assert "needs ml-engineer" in err
    assert cli(capsys, "tokens", "list")[0] == 77
    with Workspace.open(tmp_path) as workspace:
        assert ModelRegistry.for_workspace(workspace).aliases("churn") == {"production": 1}

    monkeypatch.setenv("SHIPYARD_TOKEN", admin)
    code, out, _ = cli(capsys, "tokens", "list")
    assert code == 0
    assert "vera" in out
    assert viewer not in out
    assert viewer.rsplit("_", 1)[1] not in out
    code, out, _ = cli(capsys, "audit", "list", "--action", "models.promote", "--json")
    lines = out.strip().splitlines()
    assert [('"outcome": "ok"' in ln, '"outcome": "denied"' in ln) for ln in lines] == [
        (True, False),
        (False, True),
    ]
    assert '"actor": "vera"' in lines[1]

    monkeypatch.setenv("SHIPYARD_TOKEN", "sy_000000000000_" + "A" * 43)
    code, _, err = cli(capsys, "audit", "verify")
    assert code == 77
    assert "SHIPYARD_TOKEN was not accepted" in err


def test_roles_users_and_audit_verify_finds_tampering(capsys, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    assert cli(capsys, "users", "create", "svc-batch", "--service")[0] == 0
    assert cli(capsys, "roles", "grant", "svc-batch", "data-scientist")[0] == 0
    code, out, _ = cli(capsys, "roles", "list")
    assert "svc-batch" in out
    assert "data-scientist" in out
    assert cli(capsys, "roles", "grant", "svc-batch", "superuser")[0] == 2
    assert cli(capsys, "roles", "revoke", "svc-batch")[0] == 0
    assert cli(capsys, "users", "disable", "svc-batch")[0] == 0
    code, out, _ = cli(capsys, "audit", "verify")
    assert code == 0, out
    assert "4 entries verified" in out
    head = out.strip().splitlines()[-1].removeprefix("head ")

    with Workspace.open(tmp_path) as workspace, workspace.store.engine.begin() as c:
        c.execute(sa.text("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2"))
    code, out, _ = cli(capsys, "audit", "verify")
    assert code == 1
    assert "broken at entry 2" in out
    with Workspace.open(tmp_path) as workspace, workspace.store.engine.begin() as c:
        c.execute(sa.text("DELETE FROM audit_log WHERE seq >= 2"))
    code, out, _ = cli(capsys, "audit", "verify", "--anchor", head)
    assert code == 1
    assert "the newest 3 entries were removed" in out
    assert cli(capsys, "audit", "list", "--since", "yesterday")[0] == 2


def test_audit_verify_checks_the_anchor_file_by_default(capsys, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    assert cli(capsys, "users", "create", "ann")[0] == 0
    assert cli(capsys, "users", "create", "bob")[0] == 0
    key_file = tmp_path / ".shipyard" / "keys" / "audit.key"
    assert key_file.stat().st_mode & 0o077 == 0  # made on first use, private
    code, out, _ = cli(capsys, "audit", "verify")
    assert code == 0, out
    assert "2 entries verified, up to the anchor at entry 2" in out

    with Workspace.open(tmp_path) as workspace, workspace.store.engine.begin() as c:
        c.execute(sa.text("DELETE FROM audit_log WHERE seq = 2"))
    code, out, _ = cli(capsys, "audit", "verify")
    assert code == 1
    assert "broken at entry 2" in out
    assert "anchor says it reached entry 2: the newest 1 entries were removed" in out
    assert cli(capsys, "audit", "anchor")[0] == 1  # refuses to move the anchor over a cut

    (tmp_path / ".shipyard" / "audit-anchor.json").unlink()
    code, out, _ = cli(capsys, "audit", "verify")
    assert code == 0
    assert "warning" in out
    assert "no anchor" in out
    code, out, _ = cli(capsys, "audit", "anchor")
    assert code == 0, out
    assert "anchored in" in out

    with Workspace.open(tmp_path) as workspace, workspace.store.engine.begin() as c:
        c.execute(sa.text("DROP TABLE audit_log"))
    code, out, err = cli(capsys, "audit", "verify")
    assert code == 1
    assert "audit log table 'audit_log' is missing" in out
    code, _, err = cli(capsys, "audit", "list")
    assert code == status_of(IntegrityFailure).exit  # 65: the store lost data, not a usage slip
    assert "is missing from the metadata store" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("args", [["--anchor", "x"], ["--anchor", "3:abc"]])
def test_bad_anchor(capsys, args) -> None:
    assert cli(capsys, "audit", "verify", *args)[0] == 2
