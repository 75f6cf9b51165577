"""k-anonymity and l-diversity on a hand-checked example, and greedy generalization."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest

from shipyard.core.errors import InvalidArgument
from shipyard.privacy.generalize import BandRule, RedactRule, TruncateRule
from shipyard.privacy.kanon import (
    AppliedStep,
    EquivalenceClass,
    generalize_until_k,
    k_anonymity,
)

QI = ["age", "zip", "sex"]


def patients() -> pl.DataFrame:
    """Ten rows; by hand, over (age, zip, sex) the classes are:

    (25, 12345, F): rows 1-3, diseases {flu, cold}        size 3, l 2
    (31, 12345, M): rows 4-5, diseases {flu, asthma}      size 2, l 2
    (47, 54321, F): rows 6-9, diseases {cancer, flu}      size 4, l 2
    (52, 54321, M): row 10,   diseases {cold}             size 1, l 1
    so k = 1, l = 1, 4 classes. Over (zip) alone: 12345 has 5 rows and diseases
    {flu, cold, asthma}, 54321 has 5 rows and {cancer, flu, cold}: k = 5, l = 3.
    """
    return pl.DataFrame(
        {
            "age": [25, 25, 25, 31, 31, 47, 47, 47, 47, 52],
            "zip": ["12345"] * 5 + ["54321"] * 5,
            "sex": ["F", "F", "F", "M", "M", "F", "F", "F", "F", "M"],
            "disease": [
                "flu", "cold", "flu", "flu", "asthma", "cancer", "cancer", "cancer", "flu", "cold",
            ],
        }
    )  # fmt: skip


def test_hand_checked_example() -> None:
    report = k_anonymity(patients(), QI, sensitive="disease")
    assert (report.rows, report.k, report.l, report.classes) == (10, 1, 1, 4)
    assert report.smallest == (
        EquivalenceClass({"age": 52, "zip": "54321", "sex": "M"}, 1),
        EquivalenceClass({"age": 31, "zip": "12345", "sex": "M"}, 2),
        EquivalenceClass({"age": 25, "zip": "12345", "sex": "F"}, 3),
        EquivalenceClass({"age": 47, "zip": "54321", "sex": "F"}, 4),
    )
    assert report.class_sizes == ((1, 1), (2, 1), (3, 1), (4, 1))
    assert [report.rows_at_risk(k) for k in (1, 2, 3, 4, 5)] == [0, 1, 3, 6, 10]
    assert [report.classes_below(k) for k in (1, 2, 5)] == [0, 1, 4]
    assert report.satisfies(1)
    assert not report.satisfies(2)
    assert not report.satisfies(1, l=2)

    by_zip = k_anonymity(patients().lazy(), ["zip"], sensitive="disease", n_smallest=1)
    assert (by_zip.k, by_zip.l, by_zip.classes) == (5, 3, 2)
    assert by_zip.smallest == (EquivalenceClass({"zip": "12345"}, 5),)
    assert by_zip.satisfies(5, l=3)
    assert not by_zip.satisfies(5, l=4)
    assert k_anonymity(patients(), QI).l is None


def test_nulls_form_a_class_and_an_empty_frame_has_none() -> None:
    frame = pl.DataFrame({"zip": ["1", None, None, "1"], "s": ["a", None, "b", "a"]})
    report = k_anonymity(frame, ["zip"], sensitive="s")
    assert (report.k, report.l, report.classes) == (2, 1, 2)
    empty = k_anonymity(frame.head(0), ["zip"], sensitive="s")
    assert (empty.rows, empty.k, empty.l, empty.classes) == (0, 0, 0, 0)
    assert empty.satisfies(5, l=2)  # nothing to re-identify


def test_generalize_until_k_follows_the_greedy_order() -> None:
    ladders: dict[str, list[Any]] = {
        "age": [BandRule(width=10), BandRule(width=20), RedactRule()],
        "zip": [{"kind": "truncate", "keep": 3}, {"kind": "truncate", "keep": 1}, RedactRule()],
    }
    frame, steps, report = generalize_until_k(patients(), QI, 2, ladders, sensitive="disease")
    # age has the most distinct values (4, then 4 bands of 10, then 2 bands of 20, tied with
    # zip's 2 and listed first); once redacted, only zip is left, and k = 2 needs it redacted.
    assert [(s.action, s.column, s.level) for s in steps] == [
        ("generalize", "age", 1),
        ("generalize", "age", 2),
        ("generalize", "age", 3),
        ("generalize", "zip", 1),
        ("generalize", "zip", 2),
        ("generalize", "zip", 3),
    ]
    assert steps[3].rule == TruncateRule(keep=3)
    assert frame.height == 10  # nothing suppressed
    assert (report.k, report.classes) == (3, 2)  # F: 7 rows, M: 3 rows
    assert report == k_anonymity(frame, QI, sensitive="disease")


def test_generalize_until_k_stops_as_soon_as_k_holds() -> None:
    frame, steps, report = generalize_until_k(
        patients(), ["age", "zip"], 2, {"age": [BandRule(width=10)]}
    )
    # (age, zip) classes 25/31 in 12345, 47/52 in 54321: only 52 is alone; bands of 10 leave
    # 50-59 alone too, so one row is suppressed.
    assert steps == [
        AppliedStep("generalize", "age", BandRule(width=10), 1),
        AppliedStep("suppress", rows_suppressed=1),
    ]
    assert frame.height == 9
    assert 52 not in frame["age"].to_list()
    assert "50-59" not in frame["age"].to_list()
    assert report.k >= 2

    untouched, none, same = generalize_until_k(patients(), ["zip"], 5, {"zip": [RedactRule()]})
    assert none == []
    assert same.k == 5
    assert untouched.equals(patients())


def test_generalize_until_k_reaches_k_on_random_data() -> None:
    rng = pl.int_range(0, 3000, eager=True)
    frame = pl.DataFrame(
        {
            "age": (rng * 7919 % 83 + 17),
            "zip": (rng * 104729 % 99991).cast(pl.String).str.zfill(5),
        }
    )
    ladders: dict[str, list[Any]] = {
        "age": [BandRule(width=5), BandRule(width=10), BandRule(width=25)],
        "zip": [TruncateRule(keep=4), TruncateRule(keep=3), TruncateRule(keep=2)],
    }
    before = k_anonymity(frame, ["age", "zip"])
    assert before.k == 1
    out, steps, report = generalize_until_k(frame, ["age", "zip"], 10, ladders)
    assert report.k >= 10
    suppressed = sum(s.rows_suppressed for s in steps)
    assert out.height + suppressed == frame.height


def test_bad_arguments() -> None:
    with pytest.raises(InvalidArgument, match="at least one quasi-identifier"):
        k_anonymity(patients(), [])
    with pytest.raises(InvalidArgument, match="'nope'"):
        k_anonymity(patients(), ["nope"])
    with pytest.raises(InvalidArgument, match="both a quasi-identifier and the sensitive"):
        k_anonymity(patients(), QI, sensitive="age")
    with pytest.raises(InvalidArgument, match="not quasi-identifiers"):
        generalize_until_k(patients(), ["age"], 2, {"zip": [RedactRule()]})
    with pytest.raises(InvalidArgument, match="k must be at least 1"):
        generalize_until_k(patients(), ["age"], 0, {})
