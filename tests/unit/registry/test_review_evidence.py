"""The parts of a request's evidence beyond the gate: drift of the training data, cost."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import polars as pl

from shipyard.core.settings import load_settings
from shipyard.data.datasets import write_dataset
from shipyard.registry.review_evidence import _cost, _drift, evidence_sha256, workspace_price
from shipyard.track.workspace import Workspace


def _trained_on(dataset_id: str | None) -> Any:
    """What ``_drift`` reads of a bundle: the dataset its lineage names as ``source``."""
    ids = {} if dataset_id is None else {"source": dataset_id}
    return SimpleNamespace(manifest=SimpleNamespace(lineage=SimpleNamespace(dataset_ids=ids)))


def test_drift_compares_the_training_data_of_candidate_and_holder(tmp_path: Path) -> None:
    with Workspace.open(tmp_path) as workspace:
        old = write_dataset(
            workspace, pl.DataFrame({"a": [1.0, 2.0, 3.0], "b": ["x", "y", "z"]}), name="d"
        ).dataset_id
        new = write_dataset(
            workspace, pl.DataFrame({"a": [10.0, None, 30.0, 40.0], "c": [1, 2, 3, 4]}), name="d"
        ).dataset_id
        found = _drift(_trained_on(new), _trained_on(old), workspace)
        assert found is not None
        assert (found["added"], found["removed"], found["rows"]) == (["c"], ["b"], [3, 4])
        [column] = found["columns"]
        assert column["column"] == "a"
        assert column["mean"][1] > column["mean"][0]
        assert _drift(_trained_on(new), None, workspace) is None  # no holder
        assert _drift(_trained_on(new), _trained_on(None), workspace) is None  # no lineage
        same = _drift(_trained_on(old), _trained_on(old), workspace)
        assert same is not None
        assert same["same_data"] is True


def test_cost_per_thousand_predictions_is_priced_with_the_workspace_instance(
    tmp_path: Path,
) -> None:
    price = workspace_price(load_settings(project_dir=tmp_path))
    assert price is not None

    class Timed:
        def predict(self, frame: pl.DataFrame, **_: Any) -> None:
            return None

    cost = _cost(Timed(), pl.DataFrame({"a": [1, 2, 3]}), price)  # type: ignore[arg-type]
    assert cost["rows_timed"] == 3
    assert cost["instance"] == price.instance.name
    assert float(cost["per_thousand_usd"]) >= 0
    assert "per_thousand_usd" not in _cost(Timed(), pl.DataFrame({"a": [1]}), None)  # type: ignore[arg-type]
    assert _cost(Timed(), pl.DataFrame(), price) == {
        "unavailable": "no rows to time predictions on"
    }  # type: ignore[arg-type]
    assert evidence_sha256({"a": 1, "b": [1, 2]}) == evidence_sha256({"b": [1, 2], "a": 1})
