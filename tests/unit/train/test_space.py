import optuna
import pytest

from shipyard.core.errors import InvalidArgument
from shipyard.train.space import Choice, Range, grid_values, parse_space, suggest


def test_lists_are_choices_and_dicts_are_ranges():
    space = parse_space(
        {
            "C": {"low": 0.001, "high": 10, "log": True},
            "depth": {"low": 2, "high": 8},
            "k": ["a", "b"],
        },
        where="est",
    )
    assert space["C"] == Range(0.001, 10.0, log=True, integer=False)
    assert space["depth"] == Range(2.0, 8.0, log=False, integer=True)
    assert space["k"] == Choice(("a", "b"))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([], "empty list"),
        ({"low": 1}, "a range is"),
        ({"low": 5, "high": 1}, "must be below"),
        ({"low": 0, "high": 1, "log": True}, "log range needs low > 0"),
        ({"low": "a", "high": 2}, "must be numbers"),
        ({"low": 1, "high": 2, "step": 1}, "a range is"),
        ("abc", "expected a list"),
    ],
)
def test_bad_entries_name_the_parameter(value, message):
    with pytest.raises(InvalidArgument, match=message) as info:
        parse_space({"alpha": value}, where="train.estimators.x.space")
    assert "train.estimators.x.space.alpha" in str(info.value)


def test_suggest_respects_types_and_bounds():
    space = parse_space(
        {"C": {"low": 0.5, "high": 2.0}, "n": {"low": 1, "high": 3}, "k": [1, 2]}, where="e"
    )
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    seen = []
    for _ in range(20):
        trial = study.ask()
        values = {k: suggest(trial, f"e.{k}", p) for k, p in space.items()}
        study.tell(trial, 0.0)
        seen.append(values)
    assert all(0.5 <= v["C"] <= 2.0 and isinstance(v["C"], float) for v in seen)
    assert {v["n"] for v in seen} <= {1, 2, 3}
    assert all(isinstance(v["n"], int) for v in seen)
    assert {v["k"] for v in seen} == {1, 2}


def test_grid_expands_integer_ranges_and_refuses_float_ranges():
    assert grid_values("n", Range(1, 4, integer=True)) == [1, 2, 3, 4]
    assert grid_values("k", Choice((1, "x"))) == [1, "x"]
    with pytest.raises(InvalidArgument, match="list its values"):
        grid_values("C", Range(0.1, 1.0))
