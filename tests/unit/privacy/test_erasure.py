"""Erasure on a real workspace: every version rewritten without the subject, old files gone."""

from __future__ import annotations

import json
from dataclasses import dataclass

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from shipyard.core.errors import ArtifactNotFound, InvalidArgument, PermissionDenied
from shipyard.data.datasets import (
    find_cached,
    get_dataset,
    list_datasets,
    read_dataset,
    write_dataset,
)
from shipyard.privacy.erasure import erase_subject, erasure_successor
from shipyard.privacy.pseudonym import subject_digest
from shipyard.privacy.transform import PrivacySpec, apply_privacy
from shipyard.security.audit import verify
from shipyard.security.audit_chain import security_store
from shipyard.security.identities import Identity, Kind
from shipyard.security.roles import Role
from shipyard.store.artifacts.local import LocalBlobStore
from shipyard.store.dataset_entities import DatasetVersion
from shipyard.store.datasets import DatasetStore
from shipyard.store.monitoring import MonitoringStore
from shipyard.store.security import SecurityStore
from shipyard.track.workspace import Workspace

SUBJECT = "ann@example.com"
KEY = b"erasure-test-key-0123456789abcdef"
DPO = Identity(name="dpo", kind=Kind.USER, project="project", role=Role.ADMIN, source="test")


def _log(ws: Workspace) -> SecurityStore:
    """The audit log an erasure writes to (the CLI builds it the same way)."""
    return security_store(ws.settings, ws.store)


def customers(extra: int = 0) -> pl.DataFrame:
    emails = [SUBJECT, "bob@example.com", SUBJECT, "cy@example.com", None, "di@example.com"]
    emails += [f"user{i}@example.com" for i in range(extra)]
    return pl.DataFrame(
        {
            "email": emails,
            "age": [34 + i for i in range(len(emails))],
            "spend": [float(i) * 1.5 for i in range(len(emails))],
        }
    )


@dataclass
class Setup:
    v1: DatasetVersion
    v2: DatasetVersion
    quarantine: DatasetVersion
    features: DatasetVersion
    unrelated: DatasetVersion
    other_subjects: DatasetVersion
    train_run: str
    pipeline_run: str
    unrelated_run: str


def populate(ws: Workspace) -> Setup:
    v1 = write_dataset(ws, customers(), name="customers")
    v2 = write_dataset(ws, customers(extra=4), name="customers", parents=[v1], cache_key="k2")
    bad = (
        customers()
        .head(3)
        .with_columns(_failed_checks=pl.lit(["age_max"], dtype=pl.List(pl.String)))
    )
    quarantine = write_dataset(ws, bad, name="customers", kind="quarantine")
    features = write_dataset(
        ws, read_dataset(ws, v2).drop("email"), name="customers.features", parents=[v2]
    )
    unrelated = write_dataset(ws, pl.DataFrame({"sku": [1, 2]}), name="products")
    other_subjects = write_dataset(
        ws, pl.DataFrame({"email": ["zed@example.com", None]}), name="contacts"
    )
    DatasetStore(ws.store).record_snapshot(
        "crm", watermark=None, schema=[], created_ms=1, dataset_id=v1.dataset_id
    )
    with ws.start_run(
        name="train", tags={"kind": "train", "train_key": f"{v2.dataset_id[:16]}-aaaa-bbbb"}
    ) as run:
        train_run = run.run_id
    with ws.start_run(name="pipeline", tags={"final_dataset": v2.dataset_id}) as run:
        pipeline_run = run.run_id
    with ws.start_run(name="other", tags={"final_dataset": unrelated.dataset_id}) as run:
        unrelated_run = run.run_id
    return Setup(
        v1, v2, quarantine, features, unrelated, other_subjects, train_run, pipeline_run,
        unrelated_run,
    )  # fmt: skip


def readable_versions(ws: Workspace) -> list[DatasetVersion]:
    return [v for v in list_datasets(ws) if ws.blobs.exists(v.digest)]


def test_erasure_rewrites_every_version_and_destroys_the_old_files(workspace: Workspace) -> None:
    ws = workspace
    setup = populate(ws)
    before = {v.dataset_id: read_dataset(ws, v).collect() for v in list_datasets(ws)}
    assert SUBJECT in json.dumps(setup.v1.profile)  # among the top values: must be scrubbed
    old = [setup.v1, setup.v2, setup.quarantine]
    assert isinstance(ws.blobs, LocalBlobStore)
    old_files = [ws.blobs.local_path(v.digest) for v in old]

    report = erase_subject(ws, DPO, audit_log=_log(ws), column="email", value=SUBJECT, key=KEY)

    # Every version that held the subject, and only those, was rewritten.
    assert [v.old_id for v in report.versions] == [v.dataset_id for v in old]
    assert [v.rows_erased for v in report.versions] == [2, 2, 2]
    assert report.rows_erased == 6
    for erased in report.versions:
        assert erased.rows_before == erased.rows_after + erased.rows_erased
        new = get_dataset(ws, erased.new_id or "")
        assert new.row_count == erased.rows_after
        assert new.parent_ids == (erased.old_id,)
        assert new.run_id == report.run_id
        assert new.lineage == {
            "step": "erasure",
            "erased_version": erased.old_id,
            "subject_column": "email",
            "subject_digest": subject_digest(SUBJECT, KEY),
            "rows_erased": 2,
        }
        assert erasure_successor(ws.store, erased.old_id) == new
        # Other rows intact, in order: the old rows less the subject's.
        expected = before[erased.old_id].filter(
            pl.col("email").ne_missing(SUBJECT)  # null emails are kept
        )
        assert_frame_equal(read_dataset(ws, new).collect(), expected)

    # The old files are gone from disk and the old versions cannot be read.
    assert all(not path.exists() for path in old_files)
    assert sorted(report.destroyed_blobs) == sorted(v.digest for v in old)
    for version in old:
        with pytest.raises(ArtifactNotFound):
            read_dataset(ws, version.dataset_id).collect()

    # No readable version holds the subject; nothing in the metadata names them in clear.
    for version in readable_versions(ws):
        frame = read_dataset(ws, version).collect()
        if "email" in frame.columns:
            assert SUBJECT not in frame["email"].to_list()
    for version in list_datasets(ws):
        assert SUBJECT not in json.dumps([version.profile, version.lineage, version.schema])
    run = ws.get_run(report.run_id or "")
    assert SUBJECT not in json.dumps([run.params, run.tags])
    assert run.tags["subject_digest"] == report.subject_digest

    # Versions without the subject are untouched.
    for version in (setup.unrelated, setup.other_subjects, setup.features):
        assert_frame_equal(read_dataset(ws, version).collect(), before[version.dataset_id])

    # Lineage: what people still have to do.
    assert report.runs_to_retrain == (setup.train_run,)
    assert report.other_runs == (setup.pipeline_run,)
    assert report.derived_versions == (setup.features.dataset_id,)
    assert report.sources == ("crm",)
    assert report.artifacts == ()
    assert report.audit is not None
    assert report.audit.actor == "dpo"
    assert report.audit.action == "privacy.erase"
    assert report.audit.object == f"subject:email#{subject_digest(SUBJECT, KEY)}"
    assert SUBJECT not in report.audit.detail_json

    # A pipeline with unchanged inputs now finds the erased version under its cache key.
    cached = find_cached(ws, "k2")
    assert cached is not None
    assert cached.dataset_id == report.versions[1].new_id

    # Erasing again changes nothing: the old versions are known to be gone.
    again = erase_subject(ws, DPO, audit_log=_log(ws), column="email", value=SUBJECT, key=KEY)
    assert again.versions == ()
    assert again.run_id is None
    assert set(again.already_erased) == {v.dataset_id for v in old}


def test_an_interrupted_erasure_is_completed_by_running_it_again(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup = populate(workspace)
    monkeypatch.setenv("SHIPYARD_FAULT", "privacy.erasure.before_delete:raise")
    with pytest.raises(OSError, match="injected fault"):
        erase_subject(
            workspace, DPO, audit_log=_log(workspace), column="email", value=SUBJECT, key=KEY
        )
    assert workspace.blobs.exists(setup.v1.digest)  # new versions written, old files kept
    failed = workspace.search_runs("tags.kind = 'erasure'")
    assert [r.status.value for r in failed] == ["failed"]

    monkeypatch.delenv("SHIPYARD_FAULT")
    report = erase_subject(
        workspace, DPO, audit_log=_log(workspace), column="email", value=SUBJECT, key=KEY
    )
    assert len(report.versions) == 3
    assert not workspace.blobs.exists(setup.v1.digest)
    successor = erasure_successor(workspace.store, setup.v1.dataset_id)
    assert successor is not None
    assert successor.dataset_id == report.versions[0].new_id
    for version in readable_versions(workspace):
        frame = read_dataset(workspace, version).collect()
        assert "email" not in frame.columns or SUBJECT not in frame["email"].to_list()


def test_dry_run_changes_nothing(workspace: Workspace) -> None:
    setup = populate(workspace)
    count = len(list_datasets(workspace))
    report = erase_subject(
        workspace, DPO, audit_log=_log(workspace), column="email", value=SUBJECT, dry_run=True
    )
    assert [(v.old_id, v.new_id, v.rows_erased) for v in report.versions] == [
        (setup.v1.dataset_id, None, 2),
        (setup.v2.dataset_id, None, 2),
        (setup.quarantine.dataset_id, None, 2),
    ]
    assert report.run_id is None
    assert report.destroyed_blobs == ()
    assert report.runs_to_retrain == (setup.train_run,)
    assert len(list_datasets(workspace)) == count
    assert all(workspace.blobs.exists(v.digest) for v in list_datasets(workspace))
    # Without a key the digest is a plain SHA-256 (documented as guessable).
    assert report.subject_digest.startswith("sha256:")


def test_pseudonymized_copies_are_found_with_the_key(workspace: Workspace) -> None:
    ws = workspace
    masked = apply_privacy(customers().lazy(), PrivacySpec(pseudonymize=["email"]), KEY)
    version = write_dataset(ws, masked, name="customers.private")
    assert (
        erase_subject(
            ws, DPO, audit_log=_log(ws), column="email", value=SUBJECT, dry_run=True
        ).versions
        == ()
    )
    report = erase_subject(ws, DPO, audit_log=_log(ws), column="email", value=SUBJECT, key=KEY)
    assert [(v.old_id, v.rows_erased) for v in report.versions] == [(version.dataset_id, 2)]


def test_integer_subject_columns_and_bad_input(workspace: Workspace) -> None:
    ws = workspace
    write_dataset(ws, pl.DataFrame({"customer_id": [7, 8, 7, 9]}), name="orders")
    report = erase_subject(ws, DPO, audit_log=_log(ws), column="customer_id", value="7")
    assert [v.rows_erased for v in report.versions] == [2]
    assert read_dataset(ws, report.versions[0].new_id or "").collect()["customer_id"].to_list() == [
        8,
        9,
    ]
    with pytest.raises(InvalidArgument, match="non-empty value"):
        erase_subject(ws, DPO, audit_log=_log(ws), column="customer_id", value="")
    write_dataset(ws, pl.DataFrame({"tags": [["a"], ["b"]]}), name="tagged")
    with pytest.raises(InvalidArgument, match="scalar columns only"):
        erase_subject(ws, DPO, audit_log=_log(ws), column="tags", value="a")


def test_erasure_from_python_is_audited_with_the_digest_in_the_same_store(
    workspace: Workspace,
) -> None:
    setup = populate(workspace)
    audit_log = security_store(workspace.settings, workspace.store)
    erase_subject(
        workspace,
        DPO,
        audit_log=_log(workspace),
        column="email",
        value=SUBJECT,
        key=KEY,
        dry_run=True,
    )
    assert audit_log.list_audit() == []  # a dry run changes nothing and is not audited

    report = erase_subject(
        workspace, DPO, audit_log=_log(workspace), column="email", value=SUBJECT, key=KEY
    )
    (entry,) = audit_log.list_audit()
    assert report.audit == entry
    assert (entry.actor, entry.action, entry.outcome, entry.source) == (
        "dpo",
        "privacy.erase",
        "ok",
        "test",
    )
    assert entry.object == f"subject:email#{subject_digest(SUBJECT, KEY)}"
    detail = json.loads(entry.detail_json)
    assert detail["versions"] == {v.old_id: v.new_id for v in report.versions}
    assert detail["rows_erased"] == 6
    assert detail["run_id"] == report.run_id
    assert setup.v1.dataset_id in detail["versions"]
    assert SUBJECT not in entry.detail_json
    assert verify(audit_log).ok


@pytest.mark.parametrize("role", [Role.VIEWER, Role.ML_ENGINEER, None])
def test_an_actor_without_privacy_erase_is_refused_and_the_denial_audited(
    workspace: Workspace, role: Role | None
) -> None:
    setup = populate(workspace)
    viewer = Identity(name="val", kind=Kind.USER, project="project", role=role, source="test")
    for dry_run in (True, False):
        with pytest.raises(PermissionDenied, match="erasure needs the admin role"):
            erase_subject(
                workspace,
                viewer,
                audit_log=_log(workspace),
                column="email",
                value=SUBJECT,
                key=KEY,
                dry_run=dry_run,
            )
    entries = security_store(workspace.settings, workspace.store).list_audit()
    assert [(e.actor, e.action, e.outcome) for e in entries] == [
        ("val", "privacy.erase", "denied")
    ] * 2
    assert all(e.object == f"subject:email#{subject_digest(SUBJECT, KEY)}" for e in entries)
    # Nothing was touched: every version and its file is still there.
    assert workspace.blobs.exists(setup.v1.digest)
    assert workspace.search_runs("tags.kind = 'erasure'") == []


def test_rejected_lines_holding_the_value_are_erased_by_their_raw_text(
    workspace: Workspace,
) -> None:
    lines = pl.DataFrame(
        {
            "_source": ["crm"] * 4,
            "_file": ["a.csv"] * 4,
            "_row": [1, 2, 3, 4],
            "_line": [f"1,{SUBJECT},oops", "2,jo" + SUBJECT + ",x", "3,bob@example.com", "7"],
            "_failed_checks": [["malformed_line"]] * 4,
        }
    )
    rejected = write_dataset(workspace, lines, name="crm.rejected", kind="quarantine")
    report = erase_subject(workspace, DPO, audit_log=_log(workspace), column="email", value=SUBJECT)
    assert [(v.old_id, v.rows_erased) for v in report.versions] == [(rejected.dataset_id, 1)]
    kept = read_dataset(workspace, report.versions[0].new_id or "").collect()
    assert kept["_row"].to_list() == [2, 3, 4]  # "jo" + the value is another person
    # A short numeric value matches whole fields only, never digits inside other numbers.
    numeric = erase_subject(
        workspace, DPO, audit_log=_log(workspace), column="customer_id", value="3", dry_run=True
    )
    assert [v.rows_erased for v in numeric.versions] == [1]  # "3,bob@...", not "…" or "7"


def test_monitoring_rows_naming_the_subject_are_deleted_and_other_rows_reported(
    workspace: Workspace,
) -> None:
    monitoring = MonitoringStore(workspace.store)
    row = {
        "model": "churn",
        "version": 1,
        "variant": None,
        "kind": "drift",
        "statistic": "psi",
        "subject": "plan",
        "value": 7.0,
        "window_start_ms": 0,
        "window_end_ms": 1,
        "threshold": 0.2,
        "breached": False,
        "recorded_ms": 1,
    }
    monitoring.add_observations(
        [
            {**row, "detail": {"top": [SUBJECT, "bob@example.com"]}},
            {**row, "detail": {"rows": 7}},  # a count, not the subject "7"
        ]
    )
    with workspace.start_run(name="notes", params={"contact": SUBJECT}) as run:
        noted = run.run_id
    dry = erase_subject(
        workspace, DPO, audit_log=_log(workspace), column="email", value=SUBJECT, dry_run=True
    )
    assert dry.monitoring_rows == {"monitor_observations": 1}
    assert len(monitoring.observations()) == 2

    report = erase_subject(workspace, DPO, audit_log=_log(workspace), column="email", value=SUBJECT)
    assert report.monitoring_rows == {"monitor_observations": 1}
    assert [o.detail for o in monitoring.observations()] == [{"rows": 7}]
    # A param is the run's own record: reported for a person to handle, never edited.
    assert report.residual == {"params.value": 1}
    assert workspace.get_run(noted).params == {"contact": SUBJECT}
    assert json.loads(report.audit.detail_json if report.audit else "{}")["residual"] == {
        "params.value": 1
    }
    assert (
        erase_subject(
            workspace, DPO, audit_log=_log(workspace), column="id", value="7", dry_run=True
        ).monitoring_rows
        == {}
    )
