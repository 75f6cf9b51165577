"""The settings' schema checker: lax coercions of YAML and environment values, precise errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from shipyard.core.typed_config import build, environment_values, merge, setting


@dataclasses.dataclass(kw_only=True)
class Inner:
    size: int = setting(5, ge=1, le=10)
    rate: float = setting(1.0, gt=0)
    on: bool = True
    name: str = setting("a", pattern="^[a-z]+$")
    where: Path | None = None


@dataclasses.dataclass(kw_only=True)
class Outer:
    url: str | None = None
    inner: Inner = dataclasses.field(default_factory=Inner)


def test_strings_from_the_environment_become_the_declared_types() -> None:
    env = {
        "APP_URL": "x",
        "app_inner__size": "7",
        "APP_INNER__RATE": "0.5",
        "APP_INNER__ON": "off",
        "APP_INNER__WHERE": "/tmp/k",
        "APP_UNRELATED": "1",
        "OTHER_URL": "no",
    }
    values = environment_values(Outer, env, prefix="APP_")
    assert values == {
        "url": "x",
        "inner": {"size": "7", "rate": "0.5", "on": "off", "where": "/tmp/k"},
    }
    outer, problems = build(Outer, values, extra="ignore")
    assert problems == []
    assert outer == Outer(url="x", inner=Inner(size=7, rate=0.5, on=False, where=Path("/tmp/k")))


def test_a_section_as_json_and_sections_merged_field_by_field() -> None:
    values = environment_values(Outer, {"APP_INNER": '{"size": 3}'}, prefix="APP_")
    merged = merge({"inner": {"rate": 2, "size": 9}, "url": "f"}, values)
    outer, problems = build(Outer, merged)
    assert problems == []
    assert outer is not None
    assert (outer.url, outer.inner.size, outer.inner.rate) == ("f", 3, 2.0)


def test_every_problem_is_reported_with_its_path_and_value() -> None:
    data = {"inner": {"size": 0, "rate": "soon", "on": "maybe", "name": "A", "extra": 1}}
    outer, problems = build(Outer, data)
    assert outer is None
    found = {(".".join(loc), value): message for loc, message, value in problems}
    assert found[("inner.size", 0)] == "Input should be greater than or equal to 1"
    assert "valid number" in found[("inner.rate", "soon")]
    assert "valid boolean" in found[("inner.on", "maybe")]
    assert "pattern" in found[("inner.name", "A")]
    assert found[("inner.extra", 1)] == "Extra inputs are not permitted"


@pytest.mark.parametrize(
    ("value", "message"),
    [(True, "valid integer"), (2.5, "valid integer"), ("", "valid integer"), (11, "less than")],
)
def test_integers_are_not_guessed(value: object, message: str) -> None:
    _, problems = build(Inner, {"size": value})
    assert len(problems) == 1
    assert message in problems[0][1]


def test_a_section_that_is_not_a_mapping_is_a_problem() -> None:
    _, problems = build(Outer, {"inner": "size=3"})
    assert problems == [(("inner",), "Input should be a mapping of Inner fields", "size=3")]
