"""How a subject is matched: the same answer from Python's ``re`` and from Polars, for any value."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shipyard.core.errors import InvalidArgument
from shipyard.privacy.subject import Subject

values = st.text(min_size=1, max_size=20).filter(lambda v: "\x00" not in v)
texts = st.text(max_size=40)


@settings(max_examples=200, deadline=None)
@given(value=values, before=texts, after=texts)
def test_python_and_polars_agree_and_a_delimited_value_is_always_found(
    value: str, before: str, after: str
) -> None:
    subject = Subject.of("c", value)
    delimited = f"{before},{value},{after}"
    others = [delimited, before + value + after, before, after]
    found = pl.DataFrame({"t": others}).select(subject.text_match("t"))["t"].to_list()
    assert found == [subject.in_text(t) for t in others]
    assert found[0]


@settings(max_examples=100, deadline=None)
@given(value=st.from_regex(r"[A-Za-z0-9]{1,8}", fullmatch=True), side=st.sampled_from("az09"))
def test_a_value_inside_a_longer_word_or_number_is_not_the_subject(value: str, side: str) -> None:
    subject = Subject.of("c", value)
    assert not subject.in_text(f"{side}{value}")
    assert not subject.in_text(f"{value}{side}")
    assert subject.in_text(value)


def test_json_numbers_are_not_the_subject_and_cells_compare_as_polars_text() -> None:
    subject = Subject.of("id", "7")
    assert not subject.in_json({"rows": 7, "ids": [7]})
    assert subject.in_json({"ids": ["7"]})
    assert subject.in_json({"7": 1})  # a key is a string too
    assert subject.is_value(7)
    assert not subject.is_value(7.0)  # Polars casts 7.0 to "7.0"
    assert Subject.of("flag", "true").is_value(True)
    with pytest.raises(InvalidArgument, match="non-empty value"):
        Subject.of("id", "")
