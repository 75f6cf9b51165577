"""The executor seam: local runs items in order with failures per item; settings pick it."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.core.errors import InvalidSettings
from shipyard.core.executor import LocalExecutor, executor_for
from shipyard.core.settings import load_settings, parse_executor


def _half(shared: int, item: int) -> float:
    if item == 0:
        raise ZeroDivisionError("item 0")
    return shared / item


def test_local_runs_every_item_in_order_and_keeps_each_failure_apart() -> None:
    results = LocalExecutor().map(_half, 12, [3, 0, 4])
    assert [r.value for r in results] == [4.0, None, 3.0]
    assert [r.ok for r in results] == [True, False, True]
    assert results[1].error == "ZeroDivisionError: item 0"


def test_local_is_the_default_and_ray_is_not_imported_for_it() -> None:

    assert executor_for(None).name == "local"
    assert executor_for(load_settings().executor).name == "local"


def test_the_executor_setting_takes_a_shorthand_and_checks_its_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert parse_executor("ray").kind == "ray"
    monkeypatch.setenv("SHIPYARD_EXECUTOR__KIND", "ray")
    monkeypatch.setenv("SHIPYARD_EXECUTOR__ADDRESS", "10.0.0.5:6379")
    settings = load_settings().executor
    assert (settings.kind, settings.address) == ("ray", "10.0.0.5:6379")
    monkeypatch.setenv("SHIPYARD_EXECUTOR__KIND", "spark")
    with pytest.raises(InvalidSettings, match=r"executor\.kind"):
        load_settings()


def test_the_project_file_chooses_the_executor(tmp_path: Path) -> None:
    from shipyard.pipeline.project import load_project

    (tmp_path / "shipyard.yaml").write_text(
        "name: shop\nexecutor: ray\nsources:\n  a: {uri: a.csv}\n"
    )
    load_project(tmp_path)  # the pipeline's schema accepts the section it does not own
    assert load_settings(project_dir=tmp_path).executor.kind == "ray"
