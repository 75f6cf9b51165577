"""Promotion, rollback and loading through ``ModelRegistry`` on both store backends.

Bundles are small scikit-learn pipelines on breast_cancer (tests/unit/registry/bundles.py); the
held-out rows are stored as a dataset version that the bundles name as their test split, so the
gate reads them the way it does after ``shipyard run``.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from shipyard.core.errors import (
    ArtifactNotFound,
    Conflict,
    IntegrityFailure,
    InvalidArgument,
    NotFound,
)
from shipyard.data.datasets import write_dataset
from shipyard.registry.registry import ModelRegistry
from shipyard.track.workspace import Workspace
from tests.identities import OPERATOR, person
from tests.unit.registry.bundles import WEAK, bundle_bytes, held_out


@pytest.fixture
def registry(workspace: Workspace) -> ModelRegistry:
    return ModelRegistry.for_workspace(workspace)


@pytest.fixture
def bundles(workspace: Workspace, tmp_path: Path) -> dict[str, bytes]:
    test = write_dataset(workspace, held_out("binary"), name="cancer.test").dataset_id
    return {
        "good": bundle_bytes(tmp_path, test_dataset=test, name="good"),
        "weak": bundle_bytes(tmp_path, features=WEAK["binary"], test_dataset=test, name="weak"),
        "other": bundle_bytes(tmp_path, features=["mean_radius"], test_dataset=test, name="o"),
    }


def test_the_gate_refuses_a_worse_candidate_and_records_it(
    registry: ModelRegistry, bundles: dict[str, bytes]
) -> None:
    good = registry.register("cancer", bundles["good"], actor=OPERATOR)
    weak = registry.register("cancer", bundles["weak"], actor=OPERATOR)
    first = registry.promote("cancer", good.version, actor=person("ana"), reason="baseline")
    assert first.moved
    assert first.from_version is None
    refused = registry.promote("cancer", weak.version, actor=person("bob"), reason="try it")
    assert not refused.moved
    assert refused.action == "refused"
    assert registry.get("cancer@production").version == good.version
    last = registry.history("cancer", "production")[-1]
    assert (last.action, last.actor, last.reason) == ("refused", "bob", "try it")
    assert (last.from_version, last.to_version) == (good.version, weak.version)
    assert last.gate is not None
    assert last.gate["candidate_score"] == pytest.approx(refused.verdict.candidate_score)
    assert last.gate["champion_score"] > last.gate["candidate_score"]
    assert "stays at version 1" in refused.describe()


def test_a_better_candidate_moves_the_alias(
    registry: ModelRegistry, bundles: dict[str, bytes]
) -> None:
    weak = registry.register("cancer", bundles["weak"], actor=OPERATOR)
    good = registry.register("cancer", bundles["good"], actor=OPERATOR)
    registry.promote("cancer", weak.version, actor=person("ana"))
    result = registry.promote("cancer", good.version, actor=person("ana"), margin=0.05)
    assert result.moved
    assert result.verdict is not None
    assert result.verdict.passed
    assert registry.get("cancer@production").version == good.version
    assert registry.history("cancer")[-1].gate == result.verdict.to_dict()


def test_rollbacks_unwind_and_everything_is_in_the_history(
    registry: ModelRegistry, bundles: dict[str, bytes], workspace: Workspace
) -> None:
    for key in ("weak", "other", "good"):
        registry.register("cancer", bundles[key], actor=OPERATOR)
    registry.promote("cancer", 1, actor=person("ana"))
    registry.promote("cancer", 2, actor=person("ana"))
    registry.promote("cancer", 3, actor=person("ana"))
    with pytest.raises(InvalidArgument, match="already points to version 3"):
        registry.promote("cancer", 3, actor=OPERATOR)
    back = registry.rollback("cancer", actor=person("dan"), reason="bad latency")
    assert (back.from_version, back.to_version, back.action) == (3, 2, "rollback")
    assert registry.rollback("cancer", actor=person("dan"), reason="still bad").to_version == 1
    assert registry.get("cancer@production").version == 1
    with pytest.raises(NotFound, match="no earlier version"):
        registry.rollback("cancer", actor=person("dan"))
    history = registry.history("cancer", "production")
    assert [(e.action, e.from_version, e.to_version) for e in history] == [
        ("promote", None, 1),
        ("promote", 1, 2),
        ("promote", 2, 3),
        ("rollback", 3, 2),
        ("rollback", 2, 1),
    ]
    assert [e.actor for e in history[-2:]] == ["dan", "dan"]
    assert history[-1].reason == "still bad"
    assert all(e.at_ms > 0 for e in history)


def test_force_needs_a_reason_and_is_recorded_as_force(
    registry: ModelRegistry, bundles: dict[str, bytes]
) -> None:
    registry.register("cancer", bundles["good"], actor=OPERATOR)
    registry.register("cancer", bundles["weak"], actor=OPERATOR)
    registry.promote("cancer", 1, actor=OPERATOR)
    for reason in (None, "", "   "):
        with pytest.raises(InvalidArgument, match="needs a reason"):
            registry.promote("cancer", 2, force=True, reason=reason, actor=OPERATOR)
    assert len(registry.history("cancer")) == 1
    forced = registry.promote("cancer", 2, force=True, reason="incident 42", actor=person("cy"))
    assert (forced.moved, forced.action, forced.verdict) == (True, "force", None)
    event = registry.history("cancer")[-1]
    assert (event.action, event.reason, event.actor, event.gate) == (
        "force",
        "incident 42",
        "cy",
        None,
    )


def test_other_aliases_are_gated_against_their_own_holder(
    registry: ModelRegistry, bundles: dict[str, bytes]
) -> None:
    registry.register("cancer", bundles["good"], actor=OPERATOR)
    registry.register("cancer", bundles["weak"], actor=OPERATOR)
    registry.promote("cancer", 1, actor=OPERATOR)
    challenger = registry.promote(
        "cancer", 2, alias="challenger", actor=OPERATOR
    )  # first holder: no one to beat
    assert challenger.moved
    assert registry.aliases("cancer") == {"production": 1, "challenger": 2}
    assert [e.alias for e in registry.history("cancer")] == ["production", "challenger"]
    with pytest.raises(InvalidArgument, match="alias"):
        registry.promote("cancer", 2, alias="../prod", actor=OPERATOR)


def test_a_promotion_key_makes_retries_harmless(
    registry: ModelRegistry, bundles: dict[str, bytes]
) -> None:
    registry.register("cancer", bundles["good"], actor=OPERATOR)
    registry.register("cancer", bundles["weak"], actor=OPERATOR)
    first = registry.promote("cancer", 1, idempotency_key="deploy-1", actor=OPERATOR)
    again = registry.promote("cancer", 1, idempotency_key="deploy-1", actor=OPERATOR)
    assert again.moved
    assert again.event == first.event
    refused = registry.promote("cancer", 2, idempotency_key="deploy-2", actor=OPERATOR)
    replay = registry.promote("cancer", 2, idempotency_key="deploy-2", actor=OPERATOR)
    assert (refused.moved, replay.moved) == (False, False)
    assert replay.verdict == refused.verdict
    assert len(registry.history("cancer")) == 2
    with pytest.raises(Conflict, match="deploy-1"):
        registry.promote("cancer", 2, idempotency_key="deploy-1", actor=OPERATOR)


def test_concurrent_promotions_one_wins(registry: ModelRegistry, bundles: dict[str, bytes]) -> None:
    for key in ("weak", "other", "good"):
        registry.register("cancer", bundles[key], actor=OPERATOR)
    registry.promote("cancer", 1, actor=OPERATOR)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def promote(version: int) -> None:
        barrier.wait()
        try:
            registry.promote("cancer", version, force=True, reason="race", actor=OPERATOR)
            outcomes.append("moved")
        except Conflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=promote, args=(v,)) for v in (2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Both read holder 1; either the second waits and sees a new holder (Conflict), or the two
    # ran one after the other (then the second moved from the first's version).
    moves = [e for e in registry.history("cancer") if e.action == "force"]
    assert moves[0].from_version == 1
    if outcomes.count("moved") == 2:
        assert moves[1].from_version == moves[0].to_version
    else:
        assert sorted(outcomes) == ["conflict", "moved"]
        assert len(moves) == 1
    assert registry.get("cancer@production").version == moves[-1].to_version


def test_load_names_the_version_when_its_blob_was_changed_or_lost(
    registry: ModelRegistry, bundles: dict[str, bytes], workspace: Workspace
) -> None:
    version = registry.register("cancer", bundles["good"], actor=OPERATOR)
    assert registry.load("cancer:1").sha256 == version.bundle_sha256
    path = workspace.blobs.local_path(version.bundle_sha256)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.chmod(0o644)
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityFailure, match="cancer:1"):
        registry.load("cancer:1")
    path.unlink()
    with pytest.raises(ArtifactNotFound, match="cancer:1"):
        registry.load("cancer")


def test_idempotent_registration_and_key_reuse(
    registry: ModelRegistry, bundles: dict[str, bytes], workspace: Workspace
) -> None:
    first = registry.register(
        "cancer", bundles["good"], idempotency_key="run:1", actor=person("ana")
    )
    assert (
        registry.register("cancer", bundles["good"], idempotency_key="run:1", actor=OPERATOR)
        == first
    )
    with pytest.raises(Conflict, match="run:1"):
        registry.register("cancer", bundles["weak"], idempotency_key="run:1", actor=OPERATOR)
    assert [v.version for v in registry.versions("cancer")] == [1]
    assert first.created_by == "ana"
    with pytest.raises(InvalidArgument, match="description"):
        registry.register("cancer", bundles["good"], description="x" * 2001, actor=OPERATOR)


def test_invariants_hold_and_breaches_are_named(
    registry: ModelRegistry, bundles: dict[str, bytes], workspace: Workspace
) -> None:
    good = registry.register("cancer", bundles["good"], actor=OPERATOR)
    weak = registry.register("cancer", bundles["weak"], actor=OPERATOR)
    registry.promote("cancer", 1, actor=OPERATOR)
    assert registry.check_invariants() == []
    path = workspace.blobs.local_path(good.bundle_sha256)
    path.chmod(0o644)
    path.write_bytes(path.read_bytes()[:-10])
    workspace.blobs.local_path(weak.bundle_sha256).unlink()
    problems = registry.check_invariants()
    assert len(problems) == 3, problems
    assert problems[0] == f"cancer:1: bundle blob {good.bundle_sha256[:12]} is corrupt"
    assert problems[1] == f"cancer:2: bundle blob {weak.bundle_sha256[:12]} is missing"
    assert problems[2].startswith("cancer@production does not load")
