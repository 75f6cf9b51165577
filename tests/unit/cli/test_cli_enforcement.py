"""The CLI's entry callback checks every command against the permission table (issue 14, 1b).

Every command is walked: a viewer is refused each one the table keeps from viewers (and the
refusal is audited), a token that is not accepted is refused for every command, and neither
changes anything: no row outside the audit log, no file in the project folder.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
import typer.main

from shipyard.cli import main
from shipyard.core.error_status import status_of
from shipyard.core.errors import PermissionDenied
from shipyard.security.audit_chain import security_store
from shipyard.security.permissions import allowed_roles, command_action
from shipyard.security.roles import Role
from shipyard.track.workspace import Workspace
from tests.unit.cli.running import cli
from tests.unit.cli.test_security_cli import _commands

EXIT_NOPERM = status_of(PermissionDenied).exit

COMMANDS = sorted(_commands(typer.main.get_group(main.app)))
KEPT_FROM_VIEWERS = [c for c in COMMANDS if Role.VIEWER not in allowed_roles(command_action(c))]
NONSENSE = "sy_000000000000_" + "A" * 43


def _state(root: Path) -> tuple[dict[str, int], list[str]]:
    """Row counts of every table but the audit log, and the files of the project folder."""
    with Workspace.open(root) as workspace, workspace.store.engine.connect() as c:
        tables = sa.inspect(c).get_table_names()
        counts = {
            t: int(c.execute(sa.text(f'SELECT count(*) FROM "{t}"')).scalar_one())
            for t in tables
            if t != "audit_log"
        }
    files = sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith("shipyard.db")
    )
    return counts, files


@pytest.fixture
def viewer_token(capsys, tmp_path: Path) -> str:
    code, out, err = cli(capsys, "tokens", "create", "--user", "vera", "--role", "viewer")
    assert code == 0, err
    return out.strip().splitlines()[-1]


def test_the_walk_covers_the_state_changing_commands() -> None:
    for command in ("gc", "keys rotate", "models register", "runs note", "monitor feedback"):
        assert command in KEPT_FROM_VIEWERS
    assert "monitor run" in KEPT_FROM_VIEWERS  # it stores observations and may retrain
    assert "monitor alerts" not in KEPT_FROM_VIEWERS


@pytest.mark.parametrize("command", KEPT_FROM_VIEWERS)
def test_a_viewer_is_refused_and_nothing_changes(
    command, viewer_token, capsys, monkeypatch, tmp_path
) -> None:
    before = _state(tmp_path)
    monkeypatch.setenv("SHIPYARD_TOKEN", viewer_token)
    code, _, err = cli(capsys, *command.split())
    assert code == EXIT_NOPERM  # refused: docs/cli.md, Exit status
    assert "permission denied" in err
    assert "vera is viewer" in err
    assert _state(tmp_path) == before
    with Workspace.open(tmp_path) as workspace:
        last = security_store(workspace.settings, workspace.store).list_audit(limit=1)[-1]
    assert (last.actor, last.object, last.outcome) == ("vera", f"cli:{command}", "denied")


@pytest.mark.parametrize("command", COMMANDS)
def test_a_token_not_accepted_is_an_error_for_every_command(
    command, viewer_token, capsys, monkeypatch, tmp_path
) -> None:
    before = _state(tmp_path)
    for token in ("nonsense", NONSENSE):
        monkeypatch.setenv("SHIPYARD_TOKEN", token)
        code, _, err = cli(capsys, *command.split())
        assert code == EXIT_NOPERM
        assert "SHIPYARD_TOKEN was not accepted" in err
    assert _state(tmp_path) == before


def test_help_needs_no_token(capsys, monkeypatch) -> None:
    monkeypatch.setenv("SHIPYARD_TOKEN", "nonsense")
    code, out, _ = cli(capsys, "gc", "--help")
    assert code == 0
    assert "Usage" in out


def test_an_option_value_that_reads_help_is_still_checked(
    viewer_token, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("SHIPYARD_TOKEN", viewer_token)
    code, _, err = cli(capsys, "models", "promote", "churn", "1", "--reason", "--help")
    assert code == EXIT_NOPERM
    assert "permission denied" in err
