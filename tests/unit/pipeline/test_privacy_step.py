"""The ``privacy`` step in a real project: PII tagged at ingestion, pseudonymized, k enforced.

Each test runs ``run_pipeline`` on CSV sources in a temporary project (SQLite workspace under
``.shipyard/``), so the files checked for raw values are the ones Shipyard really writes.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from shipyard.core.errors import InvalidProjectFile, InvalidSettings, ValidationFailed
from shipyard.data.datasets import list_datasets, pii_tags, read_dataset
from shipyard.pipeline.project import PrivacyStep, load_project
from shipyard.pipeline.runner import PipelineReport, run_pipeline
from shipyard.privacy.erasure import erase_subject
from shipyard.privacy.pseudonym import pseudonym
from shipyard.security.audit_chain import security_store
from shipyard.security.identities import local_identity
from shipyard.track.workspace import Workspace
from tests.identities import OPERATOR

KEY = "privacy-step-test-key-0123456789abcdef"
OTHER_KEY = "another-privacy-step-key-0123456789abcd"
SUBJECT = "ann@example.com"
N = 40


def card(i: int) -> str:
    """Return a Luhn-valid 16-digit Visa-like number, distinct per ``i``."""
    body = f"411111{i:09d}"
    total = 0
    for position, char in enumerate(reversed(body)):
        digit = int(char)
        if position % 2 == 0:  # doubled: the check digit will sit to the right of it
            digit = digit * 2 - 9 if digit * 2 > 9 else digit * 2
        total += digit
    return body + str((10 - total % 10) % 10)


def customers() -> list[dict[str, object]]:
    rows = []
    for i in range(N):
        rows.append(
            {
                "customer_id": 1000 + i,
                "email": SUBJECT if i == 0 else f"user{i}@example.com",
                "phone": f"+44 20 7946 {i:04d}",
                "card_number": card(i),
                "age": 20 + (i * 7) % 45,
                "postcode": f"{'AB'[i % 2]}{i % 3}{i % 5} {i % 9}XY",
                "spend": float(10 + (i * 13) % 50),
                "churned": int(i % 3 == 0),
            }
        )
    return rows


RAW = [str(customers()[0][c]) for c in ("email", "phone", "card_number")]


def write_csv(path: Path, rows: list[dict[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pl.DataFrame(rows).write_csv(path)


CASTS = (
    "    harmonize:\n      cast: {customer_id: int64, age: int64, spend: float64, churned: int64}\n"
)


def write_project(root: Path, steps: str, *, extra: str = "", source: str = "customers") -> Path:
    write_csv(root / "data" / "customers.csv", customers())
    (root / "shipyard.yaml").write_text(
        f"name: crm\nsources:\n  {source}:\n    uri: data/customers.csv\n{CASTS}"
        f"steps:\n{steps}{extra}"
    )
    return root


PSEUDONYMIZE = """\
  - privacy:
      pseudonymize: [email, phone]
      mask: {card_number: {keep_last: 4}}
"""


def run(root: Path) -> PipelineReport:
    with Workspace.open(root) as workspace:
        return run_pipeline(workspace, load_project(root), actor=OPERATOR)


def files_holding(root: Path, values: list[str], *, skip: Path | None = None) -> list[str]:
    """Return the files under ``root`` whose bytes, or decoded Parquet cells, hold a value."""
    hits = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p != skip):
        data = path.read_bytes()
        found = [v for v in values if v.encode() in data]
        if not found and data[:4] == b"PAR1":
            cells = pl.read_parquet(path).select(pl.all().cast(pl.String))
            text = "\n".join(str(v) for col in cells.iter_columns() for v in col.to_list())
            found = [v for v in values if v in text]
        hits += [f"{path.relative_to(root)}: {v}" for v in found]
    return hits


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("SHIPYARD_PSEUDONYM_KEY", KEY)
    return KEY


def test_ingestion_tags_pii_and_the_step_pseudonymizes_it(
    tmp_path: Path, key: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_project(tmp_path, PSEUDONYMIZE)
    report = run(root)
    assert report.executed[-2:] == ["validate", "0:privacy"]
    assert report.conserved
    with Workspace.open(root) as workspace:
        versions = {v.name: v for v in list_datasets(workspace)}
        validated, private = versions["crm.validated"], versions["crm.0.privacy"]
        assert pii_tags(validated) == {
            "email": "email",
            "phone": "phone",
            "card_number": "payment_card",
            "postcode": "postal_code",
        }
        # A tagged column's stored profile keeps counts only: no person's value in metadata.
        assert SUBJECT not in json.dumps(validated.profile)
        email_profile = next(c for c in validated.profile["columns"] if c["name"] == "email")
        assert email_profile["top_values"] == []
        assert email_profile["count"] == N
        age_profile = next(c for c in validated.profile["columns"] if c["name"] == "age")
        assert age_profile["mean"] is not None  # untagged columns keep their statistics

        assert report.final_dataset == private.dataset_id
        assert pii_tags(private) == {
            "email": "pseudonymized",
            "phone": "pseudonymized",
            "card_number": "masked",
            "postcode": "postal_code",
        }
        frame = read_dataset(workspace, private).collect()
        assert frame.height == N
        assert frame["email"][0] == pseudonym(SUBJECT, key.encode())
        assert frame["card_number"][0] == "*" * 12 + RAW[2][-4:]
        assert frame["age"].to_list() == [r["age"] for r in customers()]
        processed = workspace.blobs.local_path(private.digest)
    # Every raw email, phone and card number is absent from the processed version's file.
    every_raw = [str(r[c]) for r in customers() for c in ("email", "phone", "card_number")]
    assert files_holding(processed.parent, every_raw) == []
    assert files_holding(processed.parent.parent, RAW) != []  # the validated version has them

    monkeypatch.setenv("COLUMNS", "200")
    shown = cli(root, "data", "show", private.dataset_id[:12], "--rows", "0", capsys=capsys)
    assert (
        "personal data: email (pseudonymized), phone (pseudonymized), card_number (masked), "
        "postcode (postal_code)"
    ) in shown
    assert "email (email)" in cli(root, "data", "show", validated.dataset_id[:12], capsys=capsys)
    profile = cli(root, "data", "profile", validated.dataset_id[:12], capsys=capsys)
    assert "payment_card" in profile
    assert SUBJECT not in profile


def cli(root: Path, *args: str, capsys: pytest.CaptureFixture[str]) -> str:
    from shipyard.cli.main import run as shipyard

    with pytest.raises(SystemExit) as exited:
        shipyard(["-C", str(root), *args])
    out, err = capsys.readouterr()
    assert exited.value.code == 0, err
    return out


def test_two_sources_pseudonymized_with_the_same_key_join_on_the_pseudonym(
    tmp_path: Path, key: str
) -> None:
    # Two teams pseudonymize their own data with the shared key...
    crm = write_project(tmp_path / "crm", "  - privacy: {pseudonymize: [email, phone]}\n")
    shop = tmp_path / "shop"
    orders = [
        {"order_id": i, "email": f"user{i % 7 + 1}@example.com", "total": i} for i in range(20)
    ]
    write_csv(shop / "data" / "orders.csv", orders)
    (shop / "shipyard.yaml").write_text(
        "name: shop\nsources:\n  orders: {uri: data/orders.csv}\n"
        "steps:\n  - privacy: {pseudonymize: [email]}\n"
    )
    exports = tmp_path / "analytics" / "data"
    exports.mkdir(parents=True)
    for root, file in ((crm, "customers.parquet"), (shop, "orders.parquet")):
        report = run(root)
        with Workspace.open(root) as workspace:
            read_dataset(workspace, report.final_dataset or "").sink_parquet(exports / file)
    # ...and a third project joins their outputs with the ordinary `combine: join`.
    analytics = exports.parent
    (analytics / "shipyard.yaml").write_text(
        """
name: analytics
sources:
  orders: {uri: data/orders.parquet}
  customers: {uri: data/customers.parquet}
combine:
  union: [orders]
  join: [{source: customers, "on": email, how: inner}]
"""
    )
    report = run(analytics)
    with Workspace.open(analytics) as workspace:
        joined = read_dataset(workspace, report.final_dataset or "").collect()
    assert joined.height == 20  # every order found its customer through the pseudonym
    assert set(joined["customer_id"]) == {1000 + i for i in range(1, 8)}
    assert not any("@" in e for e in joined["email"])


KANON = """\
  - privacy:
      pseudonymize: [email, phone]
      suppress: [card_number]
      kanon:
        quasi_identifiers: [age, postcode]
        k: 3
"""
LADDERS = """\
        generalize_until_k: true
        ladders:
          age: [{kind: band, width: 10}, {kind: band, width: 20}]
          postcode: [{kind: truncate, keep: 2}, {kind: truncate, keep: 1}]
"""


def test_a_k_that_does_not_hold_fails_naming_the_smallest_classes(tmp_path: Path, key: str) -> None:
    root = write_project(tmp_path, KANON)
    with pytest.raises(ValidationFailed, match=r"k=1, below k=3") as caught:
        run(root)
    message = str(caught.value)
    assert "smallest classes: (age=" in message
    assert "generalize_until_k: true" in message
    with Workspace.open(root) as workspace:
        assert not [v for v in list_datasets(workspace) if "privacy" in v.name]
        failed = workspace.search_runs("status = 'failed'")
        assert sorted(r.name for r in failed) == ["0:privacy", "pipeline:crm"]
        stage = next(r for r in failed if r.name == "0:privacy")
        assert "k=1, below k=3" in (stage.error or "")


def test_generalize_until_k_makes_k_hold_and_records_the_report(tmp_path: Path, key: str) -> None:
    root = write_project(tmp_path, KANON + LADDERS)
    report = run(root)
    assert report.conserved
    stage = next(s for s in report.stages if s.name == "0:privacy")
    with Workspace.open(root) as workspace:
        frame = read_dataset(workspace, report.final_dataset or "").collect()
        classes = frame.group_by(["age", "postcode"]).len()
        assert classes["len"].min() >= 3  # type: ignore[operator]
        assert "card_number" not in frame.columns
        assert stage.rows_out + stage.rows_quarantined == N
        child = next(r for r in workspace.search_runs(None) if r.name == "0:privacy")
        summary = json.loads(workspace.read_artifact(child.run_id, "kanon.json"))
        assert summary["k"] >= 3
        assert summary["rows"] == stage.rows_out
        assert summary["rows_suppressed"] == stage.rows_quarantined
        assert summary["steps"][0]["action"] == "generalize"
        assert summary["smallest"][0]["rows"] == summary["k"]
        metrics = workspace.get_run(child.run_id).metrics
        assert metrics["kanon_k"] == summary["k"]
        # The ladders run out before the last small class is big enough: its rows are kept
        # apart (generalized as far as the ladders went) and counted.
        assert stage.rows_quarantined == summary["rows_suppressed"] == 2
        assert summary["steps"][-1] == {
            "action": "suppress", "column": None, "rule": None, "level": None,
            "rows_suppressed": 2,
        }  # fmt: skip
        (suppressed,) = list_datasets(workspace, kind="quarantine")
        assert suppressed.name == "crm.0.privacy.suppressed"
        held = read_dataset(workspace, suppressed).collect()
        assert held.height == 2
        assert held["_failed_checks"].to_list() == [["kanon.k"]] * 2
        assert held.group_by(["age", "postcode"]).len()["len"].max() < 3  # type: ignore[operator]


def test_changing_the_key_reruns_the_step_and_no_key_fails_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_project(tmp_path, PSEUDONYMIZE)
    with pytest.raises(InvalidSettings, match="SHIPYARD_PSEUDONYM_KEY"):
        run(root)
    monkeypatch.setenv("SHIPYARD_PSEUDONYM_KEY", KEY)
    first = run(root)
    assert "0:privacy" in first.executed
    again = run(root)
    assert "0:privacy" not in again.executed
    assert again.final_dataset == first.final_dataset

    key_file = root / "secrets" / "pseudonym.key"
    key_file.parent.mkdir()
    key_file.write_text(OTHER_KEY + "\n")
    (root / "shipyard.yaml").write_text(
        (root / "shipyard.yaml")
        .read_text()
        .replace("mask:", "key_file: secrets/pseudonym.key\n      mask:")
    )
    rotated = run(root)
    assert "0:privacy" in rotated.executed
    assert rotated.final_dataset != first.final_dataset
    with Workspace.open(root) as workspace:
        frame = read_dataset(workspace, rotated.final_dataset or "").collect()
        assert frame["email"][0] == pseudonym(SUBJECT, OTHER_KEY.encode())
        # Neither key is stored anywhere in the workspace.
    assert files_holding(root / ".shipyard", [KEY, OTHER_KEY]) == []


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        ("kanon: {quasi_identifiers: [age], k: 2, l: 2}", "`l` needs `sensitive`"),
        (
            "kanon: {quasi_identifiers: [age], k: 2, ladders: {age: [{kind: redact}]}}",
            "generalize_until_k: true",
        ),
        ("suppress: [age]\n      kanon: {quasi_identifiers: [age], k: 2}", "suppressed"),
        ("kanon: {quasi_identifiers: [], k: 2}", "quasi_identifiers"),
        ("pseudonymise: [email]", "unknown field"),
    ],
)
def test_mistakes_in_a_privacy_step_name_the_line(
    tmp_path: Path, block: str, expected: str
) -> None:
    root = write_project(tmp_path, f"  - privacy:\n      {block}\n")
    with pytest.raises(InvalidProjectFile, match=rf"shipyard.yaml:\d+: steps\.0.*{expected}"):
        load_project(root)


def test_a_privacy_step_parses(tmp_path: Path) -> None:
    project = load_project(write_project(tmp_path, KANON + LADDERS))
    (step,) = project.spec.steps
    assert isinstance(step, PrivacyStep)
    assert step.privacy.kanon is not None
    assert step.privacy.kanon.ladders["age"][1].model_dump() == {
        "kind": "band",
        "width": 20.0,
        "cap": None,
    }


TRAIN = """\
train:
  target: churned
  features: [age, spend]
  estimators: [{name: logistic}]
  tuning: {trials: 1}
  cv: {folds: 2}
  bootstrap_resamples: 20
  explain: false
  register: {model: churn}
"""


def test_erasure_after_the_privacy_step_leaves_no_raw_value_in_the_workspace(
    tmp_path: Path, key: str
) -> None:
    root = write_project(tmp_path, PSEUDONYMIZE, extra=TRAIN)
    report = run(root)
    assert report.training is not None
    assert report.training.version is not None
    state = root / ".shipyard"
    # Before: the validated version holds the subject's raw values (its Parquet file).
    assert files_holding(state, RAW) != []
    with Workspace.open(root) as workspace:
        erased = erase_subject(
            workspace,
            local_identity("crm"),
            audit_log=security_store(workspace.settings, workspace.store),
            column="email",
            value=SUBJECT,
            key=key.encode(),
        )
        names = {v.name for v in erased.versions}
        # Found in clear (validated) and by pseudonym (privacy output, training test split).
        assert {"crm.validated", "crm.0.privacy", "crm.0.privacy.test"} <= names
        assert erased.runs_to_retrain == (report.training.run_id,)
        assert erased.model_versions == ("churn:1",)
        assert erased.sources == ("customers",)  # the source file is the user's to erase
    # After: no file Shipyard keeps (metadata store, blobs, artifacts) holds the subject's
    # email, phone or card number; the source CSV outside .shipyard is not Shipyard's.
    assert files_holding(state, RAW) == []
    assert RAW[0] in (root / "data" / "customers.csv").read_text()
