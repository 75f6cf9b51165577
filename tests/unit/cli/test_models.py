"""``shipyard models`` on the embedded workspace of tmp_path (set by tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.track.workspace import Workspace
from tests.identities import OPERATOR
from tests.unit.cli.running import cli
from tests.unit.registry.trained import cached_bundle_file as bundle_file


@pytest.fixture
def bundles(tmp_path: Path) -> dict[str, Path]:
    with Workspace.open(tmp_path) as workspace:
        return {
            "good": bundle_file(workspace, tmp_path, name="good"),
            "weak": bundle_file(workspace, tmp_path, features=["charges"], name="weak"),
        }


def test_register_promote_refuse_force_rollback_history_card(
    capsys, monkeypatch, tmp_path, bundles
):
    monkeypatch.setenv("COLUMNS", "250")
    assert (
        cli(
            capsys,
            "models",
            "register",
            "churn",
            str(bundles["good"]),
            "--description",
            "Who churns next month",
        )[0]
        == 0
    )
    assert cli(capsys, "models", "register", "churn", str(bundles["weak"]))[0] == 0
    code, out, _ = cli(capsys, "models", "promote", "churn", "1")
    assert code == 0, out
    assert "version None -> 1" in out
    code, out, _ = cli(capsys, "models", "promote", "churn", "2")
    assert code == 1  # refused: a script can tell
    assert "stays at version 1" in out
    assert "failed beats_holder" in out
    code, _, err = cli(capsys, "models", "promote", "churn", "2", "--force")
    assert code == 2
    assert "needs a reason" in err
    assert cli(capsys, "models", "promote", "churn", "2", "--force", "--reason", "hotfix")[0] == 0
    code, out, _ = cli(capsys, "models", "rollback", "churn", "--reason", "bad numbers")
    assert code == 0
    assert "2 -> 1 (rollback)" in out
    code, out, _ = cli(capsys, "models", "history", "churn")
    assert [w for w in ("promote", "refused", "force", "rollback") if w in out] == [
        "promote",
        "refused",
        "force",
        "rollback",
    ]
    assert "hotfix" in out
    code, out, _ = cli(capsys, "models", "list")
    assert "production→1" in out
    code, out, _ = cli(capsys, "models", "show", "churn")
    assert "production" in out
    assert "logistic" in out
    code, out, _ = cli(capsys, "models", "compare", "churn", "1", "2")
    assert code == 0
    assert "same" in out
    cards = tmp_path / "cards"
    code, out, _ = cli(capsys, "models", "card", "churn@production", "--out", str(cards), "--html")
    assert code == 0, out
    markdown = (cards / "churn-v1.md").read_text()
    assert "Who churns next month" in markdown
    assert "## Test metrics (95% bootstrap intervals)" in markdown
    assert "| roc_auc |" in markdown
    assert "## Limitations" in markdown
    assert "rollback" in markdown
    html = (cards / "churn-v1.html").read_text()
    assert html.startswith("<!doctype html>")
    assert "<table>" in html


def test_user_errors_exit_2_with_a_message(capsys, bundles):
    code, _, err = cli(capsys, "models", "show", "nope@production")
    assert code == 2
    assert "points nowhere" in err or "no model" in err
    code, _, err = cli(capsys, "models", "register", "../evil", str(bundles["good"]))
    assert code == 2
    assert "model name" in err


def test_card_escapes_user_text_in_html(tmp_path, bundles):
    from shipyard.registry.card import model_card_html
    from shipyard.registry.registry import ModelRegistry

    with Workspace.open(tmp_path) as workspace:
        registry = ModelRegistry.for_workspace(workspace)
        version = registry.register(
            "churn", bundles["good"], description="<script>alert(1)</script>", actor=OPERATOR
        )
        html = model_card_html(version, registry.load(version), [])
    assert "<script>" not in html
    assert "&lt;script&gt;" in html


def test_keys_details_and_card_files(capsys, monkeypatch, tmp_path):
    from shipyard.data.datasets import write_dataset
    from tests.unit.registry.bundles import bundle_bytes, held_out

    monkeypatch.setenv("COLUMNS", "250")
    png = b"\x89PNG\r\n\x1a\n" + b"0" * 16
    path = tmp_path / "b.shipyard"
    path.write_bytes(
        bundle_bytes(
            tmp_path,
            extra_files={"plots/roc.png": png, "plots/a b.png": png},
            name="src",
        )
    )
    for _ in range(2):
        code, out, err = cli(capsys, "models", "register", "cancer", str(path), "--key", "k1")
        assert code == 0, err
        assert "cancer:1" in out
    code, out, err = cli(capsys, "models", "show", "cancer:1")
    assert code == 0, err
    assert "bundle sha256" in out
    code, _, err = cli(capsys, "models", "show", "nothing")
    assert code == 2
    assert "no model named 'nothing'" in err
    code, out, err = cli(capsys, "models", "promote", "cancer", "1", "--key", "p1", "--force")
    assert code == 2
    assert "needs a reason" in err
    code, _, err = cli(capsys, "models", "promote", "cancer", "1")
    assert code == 2
    assert "--test-dataset" in err
    with Workspace.open(tmp_path) as workspace:
        test = write_dataset(workspace, held_out("binary"), name="held-out").dataset_id
    code, out, err = cli(capsys, "models", "promote", "cancer", "1", "--test-dataset", test)
    assert code == 0, out + err
    assert "ok candidate_sanity" in out
    code, out, err = cli(capsys, "models", "promote", "cancer", "1")
    assert code == 2
    assert "already points to version 1" in err
    cards = tmp_path / "cards"
    code, out, err = cli(capsys, "models", "card", "cancer@production", "--out", str(cards))
    assert code == 0, err
    assert sorted(p.name for p in cards.rglob("*")) == [
        "cancer-v1-plots",
        "cancer-v1.md",
        "roc.png",
    ]
    assert (cards / "cancer-v1-plots" / "roc.png").read_bytes() == png
    assert "](<cancer-v1-plots/roc.png>)" in (cards / "cancer-v1.md").read_text()
