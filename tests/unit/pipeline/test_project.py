"""The project file: the starter parses; every mistake names file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.core.errors import InvalidProjectFile
from shipyard.pipeline.cache import cache_key
from shipyard.pipeline.project import CleanStep, FeaturesStep, load_project
from shipyard.pipeline.starter import STARTER


def write(root: Path, text: str) -> Path:
    (root / "shipyard.yaml").write_text(text)
    return root


def test_the_starter_file_is_a_valid_project(tmp_path: Path) -> None:
    project = load_project(write(tmp_path, STARTER))
    spec = project.spec
    assert list(spec.sources) == ["orders"]
    assert spec.sources["orders"].name == "orders"
    assert spec.sources["orders"].resolved_format == "csv"
    assert spec.harmonize_spec("orders").rename == {"OrderID": "order_id"}
    assert spec.contract is not None
    assert [type(s) for s in spec.steps] == [CleanStep, FeaturesStep]
    assert spec.train is not None
    assert spec.train.target == "returned"
    assert spec.train.target in spec.contract.columns  # the target the template trains on exists


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "sources:\n  a:\n    uri: x.csv\n    csvv: {}\n",
            r"shipyard.yaml:4: sources.a.csvv: unknown field",
        ),
        ("sources:\n  a:\n    format: csv\n", r"shipyard.yaml:3: sources.a.uri: required field"),
        (
            "sources:\n  a:\n    uri: x.csv\n    csv:\n      delimiter: ';;'\n",
            r"shipyard.yaml:5: sources.a.csv.delimiter",
        ),
        ("contract:\n  columns:\n    x: {type: int65}\n", r"shipyard.yaml:3: contract"),
        ("steps:\n  - explode: {}\n", r"shipyard.yaml:2: steps.0"),
        (
            "sources:\n  a:\n    uri: x.csv\n    harmonize:\n      renam: {a: b}\n",
            r"shipyard.yaml:5: sources.a.harmonize.renam: unknown field",
        ),
        ("surprise: 1\n", r"shipyard.yaml:1: surprise: unknown field"),
        ("sources: [1, 2\n", r"shipyard.yaml:2: not valid YAML: expected .,. or .\]."),
        ("- just\n- a list\n", r"expected a mapping"),
    ],
)
def test_errors_name_the_line_and_field(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(InvalidProjectFile, match=expected):
        load_project(write(tmp_path, text))


def test_a_missing_file_says_how_to_start(tmp_path: Path) -> None:
    with pytest.raises(InvalidProjectFile, match="shipyard init"):
        load_project(tmp_path)


def test_cache_keys_change_with_every_input() -> None:
    base = cache_key("clean", {"a": 1}, code="c1", inputs=["d1"])
    assert base == cache_key("clean", {"a": 1}, code="c1", inputs=["d1"])
    assert base != cache_key("clean", {"a": 2}, code="c1", inputs=["d1"])
    assert base != cache_key("clean", {"a": 1}, code="c2", inputs=["d1"])
    assert base != cache_key("clean", {"a": 1}, code="c1", inputs=["d2"])
    assert base != cache_key("features", {"a": 1}, code="c1", inputs=["d1"])
