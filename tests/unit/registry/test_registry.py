"""The registry on both store backends: versions, references, the gate, rollback, history."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from shipyard.core.errors import Conflict, IntegrityFailure, InvalidArgument, NotFound
from shipyard.registry.registry import ModelRegistry
from shipyard.track.workspace import Workspace
from tests.identities import OPERATOR, person
from tests.unit.registry.trained import cached_bundle_file as bundle_file


@pytest.fixture
def files(workspace: Workspace, tmp_path: Path) -> dict[str, Path]:
    return {
        "good": bundle_file(workspace, tmp_path, name="good"),
        "weak": bundle_file(workspace, tmp_path, features=["charges"], name="weak"),
    }


def test_register_resolve_and_load(workspace: Workspace, files) -> None:
    registry = ModelRegistry.for_workspace(workspace)
    v1 = registry.register("churn", files["good"], description="first", actor=OPERATOR)
    v2 = registry.register("churn", files["weak"].read_bytes(), actor=OPERATOR)
    assert (v1.version, v2.version) == (1, 2)
    assert registry.get("churn").version == 2
    assert registry.get("churn:1").bundle_sha256 == v1.bundle_sha256
    assert v1.metrics["estimator"] == "logistic"
    assert registry.load("churn:1").manifest.feature_names == ["tenure", "charges", "plan"]
    with pytest.raises(NotFound, match="points nowhere"):
        registry.get("churn@production")
    with pytest.raises(NotFound):
        registry.get("churn:9")
    with pytest.raises(InvalidArgument):
        registry.get("a@b@c")
    assert registry.list_models() == [{"name": "churn", "versions": 2, "latest": 2, "aliases": {}}]


def test_bad_names_and_bad_bundles_store_nothing(workspace: Workspace, files) -> None:
    registry = ModelRegistry.for_workspace(workspace)
    before = set(workspace.blobs.iter_digests())  # the test splits
    with pytest.raises(InvalidArgument):
        registry.register("../x", files["good"], actor=OPERATOR)
    with pytest.raises(Exception, match=r"pickle|zip|bundle"):
        registry.register("churn", b"\x80\x04\x95not a bundle", actor=OPERATOR)
    assert registry.list_models() == []
    assert set(workspace.blobs.iter_digests()) == before


def test_idempotent_registration(workspace: Workspace, files) -> None:
    registry = ModelRegistry.for_workspace(workspace)
    first = registry.register("churn", files["good"], idempotency_key="k1", actor=OPERATOR)
    again = registry.register("churn", files["good"], idempotency_key="k1", actor=OPERATOR)
    assert first == again
    assert len(registry.versions("churn")) == 1


def test_gate_refuses_a_worse_candidate_and_rollback_restores(workspace: Workspace, files) -> None:
    registry = ModelRegistry.for_workspace(workspace)
    good = registry.register("churn", files["good"], actor=OPERATOR)
    weak = registry.register("churn", files["weak"], actor=OPERATOR)
    first = registry.promote("churn", good.version, actor=person("ana"), reason="baseline")
    assert first.moved
    assert first.verdict.passed
    refused = registry.promote("churn", weak.version, actor=person("bob"))
    assert not refused.moved
    assert refused.verdict.candidate_score < refused.verdict.champion_score
    assert registry.get("churn@production").version == good.version  # the alias did not move
    with pytest.raises(InvalidArgument, match="needs a reason"):
        registry.promote("churn", weak.version, force=True, actor=OPERATOR)
    forced = registry.promote(
        "churn", weak.version, force=True, reason="incident 42", actor=person("cy")
    )
    assert forced.moved
    assert registry.get("churn@production").version == weak.version
    back = registry.rollback("churn", actor=person("dan"), reason="weak model")
    assert (back.from_version, back.to_version) == (weak.version, good.version)
    assert registry.get("churn@production").version == good.version
    history = registry.history("churn", "production")
    assert [e.action for e in history] == ["promote", "refused", "force", "rollback"]
    assert [e.actor for e in history] == ["ana", "bob", "cy", "dan"]
    assert history[1].gate["passed"] is False
    assert history[1].gate["candidate_score"] < history[1].gate["champion_score"]
    assert history[2].reason == "incident 42"
    assert all(e.at_ms > 0 for e in history)


def test_tampered_blob_is_detected_on_load(workspace: Workspace, files) -> None:
    registry = ModelRegistry.for_workspace(workspace)
    version = registry.register("churn", files["good"], actor=OPERATOR)
    path = workspace.blobs.local_path(version.bundle_sha256)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.chmod(0o644)
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityFailure):
        registry.load("churn:1")


def test_rollback_without_history_and_compare(workspace: Workspace, files) -> None:
    registry = ModelRegistry.for_workspace(workspace)
    registry.register("churn", files["good"], actor=OPERATOR)
    registry.register("churn", files["weak"], actor=OPERATOR)
    with pytest.raises(NotFound, match="no earlier version"):
        registry.rollback("churn", actor=OPERATOR)
    rows = registry.compare("churn", [1, 2])
    assert [r["version"] for r in rows] == [1, 2]
    assert rows[0]["same_rows_score"] > rows[1]["same_rows_score"]
    assert rows[0]["rows"] == rows[1]["rows"]


def test_concurrent_registrations_are_gap_free(workspace: Workspace, files) -> None:
    registry = ModelRegistry.for_workspace(workspace)
    data = files["good"].read_bytes()
    versions: list[int] = []
    errors: list[BaseException] = []

    def register() -> None:
        try:
            versions.append(registry.register("churn", data, actor=OPERATOR).version)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=register) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(versions) == list(range(1, 9))


def test_concurrent_alias_moves_compare_and_set(workspace: Workspace, files) -> None:
    registry = ModelRegistry.for_workspace(workspace)
    for _ in range(3):
        registry.register("churn", files["good"], actor=OPERATOR)
    registry.promote("churn", 1, force=True, reason="start", actor=OPERATOR)
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def move(to: int) -> None:
        barrier.wait()
        try:
            registry.store.move_alias(
                "churn", "production", to_version=to, expected_from=1, action="set",
                actor="t", reason=None, gate=None, at_ms=1,
            )  # fmt: skip
            outcomes.append("moved")
        except Conflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=move, args=(v,)) for v in (2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict", "moved"]
    assert registry.get("churn@production").version in (2, 3)
