"""The ``stream:`` section: parsed through the project-file parser, errors name the line."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from shipyard.core.errors import InvalidProjectFile
from shipyard.pipeline.project import load_project
from shipyard.stream.config import load_stream_config

if TYPE_CHECKING:
    from pathlib import Path

GOOD = """\
name: shop
stream:
  input: events
  model: churn@production
  output: predictions
  dead_letters: dead
  batch_size: 200
"""


def test_a_good_section_reads_back(tmp_path: Path) -> None:
    (tmp_path / "shipyard.yaml").write_text(GOOD)
    config = load_stream_config(tmp_path)
    assert (config.input, config.model_name, config.alias, config.batch_size) == (
        "events",
        "churn",
        "production",
        200,
    )
    assert load_project(tmp_path).spec.stream is not None  # the pipeline accepts the section


def test_a_wrong_field_is_named_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "shipyard.yaml").write_text(GOOD.replace("batch_size: 200", "batch_size: -1"))
    with pytest.raises(InvalidProjectFile, match=r"shipyard.yaml:7: stream.batch_size"):
        load_stream_config(tmp_path)


def test_a_model_without_alias_is_refused(tmp_path: Path) -> None:
    (tmp_path / "shipyard.yaml").write_text(GOOD.replace("churn@production", "churn"))
    with pytest.raises(InvalidProjectFile, match=r"shipyard.yaml:4: stream.model: .*name@alias"):
        load_stream_config(tmp_path)


def test_an_unknown_field_is_refused(tmp_path: Path) -> None:
    (tmp_path / "shipyard.yaml").write_text(GOOD + "  batchsize: 3\n")
    with pytest.raises(InvalidProjectFile, match=r"shipyard.yaml:8: stream.batchsize: unknown"):
        load_stream_config(tmp_path)


def test_no_section_says_what_is_needed(tmp_path: Path) -> None:
    (tmp_path / "shipyard.yaml").write_text("name: shop\n")
    with pytest.raises(InvalidProjectFile, match="stream: expected a mapping"):
        load_stream_config(tmp_path)


WINDOWED = """\
name: shop
sources:
  payments: {csv: {path: payments.csv}}
steps:
  - features:
      amount_ratio: {ratio: [amount, limit]}
      spend_1h: {window: {column: amount, agg: sum, key: account, time: ts_ms, tumbling: 1h}}
stream:
  input: events
  model: fraud@production
  output: predictions
  dead_letters: dead
  event_time_field: ts_ms
"""


def test_window_features_come_from_the_features_steps(tmp_path: Path) -> None:
    from shipyard.stream.config import load_window_defs

    (tmp_path / "shipyard.yaml").write_text(WINDOWED)
    config = load_stream_config(tmp_path)
    defs = load_window_defs(tmp_path, config)
    assert [(d.name, d.agg, d.key, d.window.size_ms) for d in defs] == [
        ("spend_1h", "sum", "account", 3_600_000)
    ]
    assert config.late_stream == "events:late"
    assert config.state_ttl_s(defs) == 2 * 3600 + 120  # twice (an hour + a minute of lateness)


def test_a_window_reading_another_time_field_is_refused_with_its_line(tmp_path: Path) -> None:
    from shipyard.stream.config import load_window_defs

    (tmp_path / "shipyard.yaml").write_text(WINDOWED.replace("time: ts_ms", "time: created"))
    config = load_stream_config(tmp_path)
    with pytest.raises(InvalidProjectFile, match=r"shipyard.yaml:13: stream.event_time_field"):
        load_window_defs(tmp_path, config)
