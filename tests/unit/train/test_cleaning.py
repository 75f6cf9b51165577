"""``clean``'s fitted statistics as a model step: fitted on the rows given, loadable (issue 16)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shipyard.core.errors import InvalidData
from shipyard.data.clean import OutlierRule
from shipyard.registry.safe_format import dump_model, load_model
from shipyard.train.cleaning import TrainingRowCleaner, fitted_cleaning
from shipyard.train.cleaning_spec import ModelCleaningSpec
from shipyard.train.preprocess import Columns, build_preprocessor
from shipyard.train.spec import PreprocessSpec, TrainSpec

SPEC = ModelCleaningSpec(
    impute={"x": "median", "plan": "mode"},
    outliers={"x": OutlierRule(method="iqr", k=1.5, action="clip")},
)


def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "x": [1.0, 2.0, np.nan, 4.0, 100.0, 3.0],
            "plan": np.array(["b", "a", np.nan, "b", "a", np.nan], dtype=object),
        }
    )


def test_statistics_come_from_the_rows_fitted_on() -> None:
    cleaner = TrainingRowCleaner.of(SPEC).fit(frame())
    observed = np.array([1.0, 2.0, 4.0, 100.0, 3.0])
    q1, q3 = np.quantile(observed, [0.25, 0.75])
    stats = cleaner.statistics_
    assert stats["impute.x"] == {"value": pytest.approx(float(np.median(observed)))}
    assert stats["impute.plan"] == {"value": "a"}  # tied modes: the smallest
    assert stats["outliers.x"]["upper"] == pytest.approx(q3 + 1.5 * (q3 - q1))
    out = cleaner.transform(frame())
    assert out["x"].tolist()[4] == pytest.approx(q3 + 1.5 * (q3 - q1))  # clipped
    assert out["x"].tolist()[2] == pytest.approx(3.0)  # imputed
    assert out["plan"].tolist() == ["b", "a", "a", "b", "a", "a"]
    refit = TrainingRowCleaner.of(SPEC).fit(frame().iloc[:3])  # other rows, other values
    assert refit.statistics_["impute.x"]["value"] == pytest.approx(1.5)


def test_a_rule_on_a_column_the_model_does_not_take_says_so() -> None:
    cleaner = TrainingRowCleaner.of(ModelCleaningSpec(impute={"gone": "median"}))
    with pytest.raises(InvalidData, match=r"'gone' is not a feature of the model"):
        cleaner.fit(frame())


def test_the_model_keeps_its_values_through_the_bundle_format() -> None:
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import Pipeline

    columns = Columns(numeric=("x",), categorical=("plan",))
    preprocess = build_preprocessor(PreprocessSpec(clean=SPEC), columns, seed=0)
    model = Pipeline([("preprocess", preprocess), ("model", LinearRegression())])
    model.fit(frame(), np.arange(6.0))
    loaded = load_model(dump_model(model))
    probe = pd.DataFrame({"x": [np.nan, 1e9], "plan": np.array([np.nan, "b"], dtype=object)})
    np.testing.assert_allclose(loaded.predict(probe), model.predict(probe))
    assert fitted_cleaning(loaded) == fitted_cleaning(model)
    assert fitted_cleaning(loaded)["impute.x"]["value"] == pytest.approx(3.0)


def test_specs_without_clean_keep_their_fingerprint() -> None:
    spec = TrainSpec(target="y")
    assert "clean" not in spec.model_dump(mode="json")["preprocess"]
    with_clean = spec.model_copy(update={"preprocess": PreprocessSpec(clean=SPEC)})
    assert with_clean.fingerprint() != spec.fingerprint()
