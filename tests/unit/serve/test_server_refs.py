"""``shipyard serve`` references: ``name@alias`` follows the alias, ``name:N`` pins a version."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from shipyard.core.errors import InvalidArgument
from shipyard.registry.registry import ModelRegistry
from shipyard.serve.server import RegistrySource, deploy_from_refs
from shipyard.serve.traffic import ServedModelSpec
from shipyard.track.workspace import Workspace
from tests.identities import OPERATOR
from tests.unit.serve.conftest import make_bundle


def test_both_reference_forms_are_accepted() -> None:
    spec = deploy_from_refs(["churn@production", "fraud:3"])
    assert spec.models["churn"].champion == "production"
    assert spec.models["fraud"].champion == ":3"
    assert spec.models["fraud"].aliases() == [":3"]


@pytest.mark.parametrize("ref", ["churn", "churn@", "@prod", "churn:", "churn:x", ":3"])
def test_other_forms_name_both_accepted_ones(ref: str) -> None:
    with pytest.raises(InvalidArgument, match=r"model@alias .* or model:version"):
        deploy_from_refs([ref])


def test_a_pinned_version_takes_no_traffic_policy() -> None:
    with pytest.raises(ValidationError, match="pinned version"):
        ServedModelSpec(model="churn", champion=":2", policy={"type": "shadow"})


def test_the_registry_source_resolves_pinned_versions_and_aliases(tmp_path: Path) -> None:
    for c, seed in ((1.0, 0), (0.01, 1)):
        make_bundle(tmp_path, c=c, seed=seed)
    with Workspace.open(tmp_path) as workspace:
        registry = ModelRegistry.for_workspace(workspace)
        for c, seed in ((1.0, 0), (0.01, 1)):
            registry.register("churn", tmp_path / f"churn-{c}-{seed}.shipyard", actor=OPERATOR)
        registry.promote("churn", 1, force=True, reason="start", actor=OPERATOR)
        source = RegistrySource(registry)
        assert source.resolve("churn", "production") == 1
        assert source.resolve("churn", ":2") == 2  # pinned: whatever production does
