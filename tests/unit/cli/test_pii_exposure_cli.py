"""Raw personal data in shown rows, enforced by role and audited (issue 7), through the CLI.

A project ingests customers with emails and phones (one row fails the contract, one line does
not parse), pseudonymizes the emails, and is then read as a viewer, a data scientist and an
admin through ``SHIPYARD_TOKEN`` (tokens made with ``shipyard tokens create``) or as the local
admin of the embedded workspace.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from shipyard.cli import context, main
from shipyard.data.datasets import list_datasets
from shipyard.pipeline.project import load_project
from shipyard.pipeline.runner import run_pipeline
from shipyard.privacy.pseudonym import pseudonym
from shipyard.security.identities import local_user
from shipyard.track.workspace import Workspace
from tests.identities import OPERATOR

KEY = "exposure-test-pseudonym-key-0123456789abcdef"
N = 8
BAD_AGE = 3  # this row fails `age: {min: 0}` and goes to quarantine
EMAILS = [f"user{i}@example.com" for i in range(N)] + ["broken@example.com"]
PHONES = [f"+44 20 7946 {i:04d}" for i in range(N)] + ["+44 20 7946 9999"]
RAW = EMAILS + PHONES
WIDTH = 250
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class Result(NamedTuple):
    code: int
    out: str
    err: str


class Project(NamedTuple):
    root: Path
    validated: str
    private: str
    quarantine: str
    rejected: str


@pytest.fixture(autouse=True)
def _wide_plain_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", str(WIDTH))
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(name, raising=False)
    assert context.console.width == WIDTH


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    monkeypatch.setenv("SHIPYARD_PSEUDONYM_KEY", KEY)
    lines = ["customer_id,email,phone,age"]
    for i in range(N):
        lines.append(f"{100 + i},{EMAILS[i]},{PHONES[i]},{-5 if i == BAD_AGE else 20 + i}")
    lines.insert(4, f"999,{EMAILS[N]},{PHONES[N]},30,extra")  # five fields: not readable
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "customers.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "shipyard.yaml").write_text(
        "name: crm\n"
        "sources:\n  customers:\n    uri: data/customers.csv\n"
        "    harmonize:\n      cast: {customer_id: int64, age: int64}\n"
        "contract:\n  columns:\n    age: {type: int64, min: 0}\n"
        "steps:\n  - privacy:\n      pseudonymize: [email]\n"
    )
    with Workspace.open(tmp_path) as workspace:
        run_pipeline(workspace, load_project(tmp_path), actor=OPERATOR)
        ids = {v.name: v.dataset_id for v in list_datasets(workspace)}
    return Project(
        tmp_path, ids["crm.validated"], ids["crm.0.privacy"], ids["crm.quarantine"],
        ids["crm.rejected"],
    )  # fmt: skip


def cli(capsys: pytest.CaptureFixture[str], project: Project, *args: str) -> Result:
    capsys.readouterr()
    code: Any = 0
    try:
        main.run(["-C", str(project.root), *args])
    except SystemExit as e:
        code = e.code
    captured = capsys.readouterr()
    return Result(
        0 if code is None else int(code), _ANSI.sub("", captured.out), _ANSI.sub("", captured.err)
    )


def token(capsys: pytest.CaptureFixture[str], project: Project, user: str, role: str) -> str:
    result = cli(capsys, project, "tokens", "create", "--user", user, "--role", role)
    assert result.code == 0, result.err
    return result.out.strip().splitlines()[-1]


def pii_audit(
    capsys: pytest.CaptureFixture[str], project: Project, monkeypatch: pytest.MonkeyPatch
) -> list[dict[str, Any]]:
    """The ``data.read_pii`` entries, read as the local admin; the whole listing holds no value."""
    monkeypatch.delenv("SHIPYARD_TOKEN", raising=False)
    listing = cli(capsys, project, "audit", "list", "--action", "data.read_pii", "--json")
    assert listing.code == 0, listing.err
    assert leaked(listing.out) == []
    return [json.loads(line) for line in listing.out.splitlines() if line.strip()]


def leaked(text: str) -> list[str]:
    return [value for value in RAW if value in text]


def test_a_data_scientist_sees_rows_with_raw_personal_data_masked(
    capsys: pytest.CaptureFixture[str], project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHIPYARD_TOKEN", token(capsys, project, "dana", "data-scientist"))

    shown = cli(capsys, project, "data", "show", project.validated[:12])
    assert shown.code == 0, shown.err
    assert "personal data: email (email), phone (phone)" in shown.out
    assert "masked (personal data; reading it needs data.read_pii): email, phone" in shown.out
    assert shown.out.count("<email>") == N - 1
    assert shown.out.count("<phone>") == N - 1
    assert "│ 27  │" in shown.out  # the other columns are shown as stored
    assert leaked(shown.out) == []

    # Pseudonymized emails are what a data scientist works with; the phones stay masked.
    private = cli(capsys, project, "data", "show", project.private[:12])
    assert pseudonym(EMAILS[0], KEY.encode()) in private.out
    assert "<phone>" in private.out
    assert "<email>" not in private.out
    assert leaked(private.out) == []

    quarantined = cli(capsys, project, "data", "quarantine", project.quarantine[:12])
    assert "age.min" in quarantined.out
    assert "<email>" in quarantined.out
    rejected = cli(capsys, project, "data", "quarantine", project.rejected[:12])
    assert "malformed_line" in rejected.out
    assert "<raw line>" in rejected.out
    kanon = cli(capsys, project, "privacy", "kanon", project.validated[:12], "--qi", "phone")
    assert "<phone>" in kanon.out
    # The unreadable line is tagged, so its stored profile keeps counts, not the line.
    profile = cli(capsys, project, "data", "profile", project.rejected[:12])
    assert "raw line" in profile.out
    outputs = (private, quarantined, rejected, kanon, profile)
    assert leaked("".join(r.out for r in outputs)) == []
    assert all(r.code == 0 for r in outputs)

    assert pii_audit(capsys, project, monkeypatch) == []  # nothing raw was read


def test_a_viewer_sees_no_rows_at_all(
    capsys: pytest.CaptureFixture[str], project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHIPYARD_TOKEN", token(capsys, project, "vera", "viewer"))
    shown = cli(capsys, project, "data", "show", project.validated[:12])
    assert shown.code == 0, shown.err
    assert "personal data: email (email), phone (phone)" in shown.out
    assert "rows hidden: reading rows needs data.read (data-scientist)" in shown.out
    assert "│ 27  │" not in shown.out
    assert leaked(shown.out) == []
    quarantined = cli(capsys, project, "data", "quarantine")
    assert quarantined.code == 77  # PermissionDenied: EX_NOPERM
    assert "data.read needs data-scientist" in quarantined.err
    assert leaked(quarantined.out + quarantined.err) == []


def test_an_admin_reads_raw_personal_data_and_each_command_is_audited_once(
    capsys: pytest.CaptureFixture[str], project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The local admin of the embedded workspace.
    shown = cli(capsys, project, "data", "show", project.validated[:12])
    assert shown.code == 0, shown.err
    assert EMAILS[0] in shown.out
    assert PHONES[1] in shown.out
    assert "masked" not in shown.out
    no_rows = cli(capsys, project, "data", "show", project.validated[:12], "--rows", "0")
    assert no_rows.code == 0
    assert leaked(no_rows.out) == []  # nothing shown, nothing to audit

    # An admin token, asking explicitly.
    monkeypatch.setenv("SHIPYARD_TOKEN", token(capsys, project, "ada", "admin"))
    rejected = cli(capsys, project, "data", "quarantine", project.rejected[:12], "--raw-pii")
    assert rejected.code == 0, rejected.err
    assert f"999,{EMAILS[N]},{PHONES[N]},30,extra" in rejected.out

    entries = pii_audit(capsys, project, monkeypatch)
    assert [(e["actor"], e["outcome"], e["object"]) for e in entries] == [
        (local_user(), "ok", f"dataset:{project.validated}/email,phone"),
        ("ada", "ok", f"dataset:{project.rejected}/_line"),
    ]
    assert entries[0]["detail"] == {
        "command": "data show",
        "columns": {"email": "email", "phone": "phone"},
        "rows": N - 1,
    }
    assert entries[1]["detail"]["command"] == "data quarantine"
    assert all(e["source"].startswith("cli:") and e["at_ms"] > 0 for e in entries)
    verified = cli(capsys, project, "audit", "verify")
    assert verified.code == 0, verified.out + verified.err


def test_asking_for_raw_pii_without_the_permission_exits_77_and_is_audited_as_denied(
    capsys: pytest.CaptureFixture[str], project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHIPYARD_TOKEN", token(capsys, project, "dana", "data-scientist"))
    attempts = [
        ("data", "show", project.validated[:12], "--raw-pii"),
        ("data", "quarantine", project.quarantine[:12], "--raw-pii"),
        ("privacy", "kanon", project.validated[:12], "--qi", "phone", "--raw-pii"),
    ]
    for args in attempts:
        result = cli(capsys, project, *args)
        assert result.code == 77, args
        assert "--raw-pii needs data.read_pii" in result.err
        assert "data.read_pii needs admin" in result.err
        assert leaked(result.out + result.err) == []
        assert "<email>" not in result.out  # refused, not quietly masked

    entries = pii_audit(capsys, project, monkeypatch)
    assert [(e["actor"], e["outcome"], e["detail"]["command"]) for e in entries] == [
        ("dana", "denied", "data show"),
        ("dana", "denied", "data quarantine"),
        ("dana", "denied", "privacy kanon"),
    ]
    assert entries[0]["object"] == f"dataset:{project.validated}/email,phone"
    verified = cli(capsys, project, "audit", "verify")
    assert verified.code == 0, verified.out + verified.err
