"""MLflow's search syntax becomes Shipyard's filter language, and only outside string values."""

from __future__ import annotations

import pytest

from shipyard.serve.mlflow.errors import MlflowError
from shipyard.serve.mlflow.filters import translate
from shipyard.store.filters import parse_filter, parse_order_by


@pytest.mark.parametrize(
    ("mlflow", "shipyard"),
    [
        (
            "metrics.rmse < 0.8 AND params.model = 'lgbm'",
            "metrics.rmse < 0.8 AND params.model = 'lgbm'",
        ),
        ("tags.\"mlflow.runName\" = 'x'", "tags.`mlflow.runName` = 'x'"),
        ("attributes.run_name = 'a'", "attributes.name = 'a'"),
        ("run_name LIKE 'cv-%'", "attributes.name LIKE 'cv-%'"),
        ("attributes.created > 5", "attributes.start_time > 5"),
        ("attributes.status = 'FINISHED'", "attributes.status = 'FINISHED'"),
        (
            "params.note = 'run_name \"x\" attributes.created'",
            "params.note = 'run_name \"x\" attributes.created'",
        ),
        ("attributes.run_id IN ('a', 'b')", "attributes.run_id IN ('a', 'b')"),
    ],
)
def test_translation(mlflow: str, shipyard: str) -> None:
    assert translate(mlflow) == shipyard
    parse_filter(translate(mlflow))  # Shipyard's parser takes every translation


def test_order_by_keys_translate_too() -> None:
    assert parse_order_by(translate("attributes.start_time DESC")).descending
    assert parse_order_by(translate("run_name")).field.name == "name"


@pytest.mark.parametrize(
    "text", ["attributes.user_id = 'a'", "datasets.name = 'x'", "attributes.artifact_uri = 'x'"]
)
def test_what_shipyard_does_not_keep_is_refused(text: str) -> None:
    with pytest.raises(MlflowError) as raised:
        translate(text)
    assert raised.value.status == 400
