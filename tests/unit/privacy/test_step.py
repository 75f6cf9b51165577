"""The privacy step's pure part: treatments, k and l enforced, suppressed rows, key identity."""

from __future__ import annotations

import polars as pl
import pytest

from shipyard.core.errors import InvalidSettings, ValidationFailed
from shipyard.privacy.step import (
    MASKED,
    PSEUDONYMIZED,
    PrivacyStepSpec,
    key_fingerprint,
    run_privacy,
    treated_tags,
)

KEY = b"step-test-key-0123456789abcdefghij"


def people() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "email": [f"p{i}@example.com" for i in range(9)],
            "age": [21, 22, 23, 34, 35, 36, 47, 58, 69],
            "diagnosis": ["a", "b", "c", "a", "a", "a", "b", "c", "a"],
        }
    )


def spec(**kanon: object) -> PrivacyStepSpec:
    return PrivacyStepSpec.model_validate(
        {"pseudonymize": ["email"], "kanon": {"quasi_identifiers": ["age"], **kanon}}
    )


def test_key_fingerprint_identifies_the_key_without_revealing_it() -> None:
    assert key_fingerprint(KEY) == key_fingerprint(bytes(KEY))
    assert key_fingerprint(KEY) != key_fingerprint(KEY[:-1] + b"!")
    assert KEY.hex() not in key_fingerprint(KEY)
    assert len(key_fingerprint(KEY)) == 64
    with pytest.raises(InvalidSettings, match="at least 32"):
        key_fingerprint(b"short")


def test_treated_tags_replace_what_was_treated() -> None:
    s = PrivacyStepSpec.model_validate(
        {"pseudonymize": ["email"], "mask": {"phone": {}}, "suppress": ["name"]}
    )
    before = {"email": "email", "phone": "phone", "name": "person_name", "zip": "postal_code"}
    assert treated_tags(s, before) == {
        "email": PSEUDONYMIZED,
        "phone": MASKED,
        "zip": "postal_code",
    }
    assert "kanon" not in s.treatments.model_dump()


def test_generalize_until_k_keeps_suppressed_rows_apart() -> None:
    step = spec(k=3, generalize_until_k=True, ladders={"age": [{"kind": "band", "width": 20}]})
    outcome = run_privacy(people(), step, KEY)
    assert outcome.report is not None
    assert outcome.report.k >= 3
    assert outcome.suppressed is not None
    assert outcome.frame.height + outcome.suppressed.height == 9
    # The 40-59 band holds two people and the 60+ one: both classes too small, suppressed.
    assert sorted(outcome.suppressed["age"].to_list()) == ["40-59", "40-59", "60-79"]
    assert outcome.summary()["rows_suppressed"] == 3
    assert not any("@" in e for e in outcome.frame["email"])


def test_k_without_generalizing_fails_and_names_the_smallest_class() -> None:
    with pytest.raises(ValidationFailed, match=r"k=1, below k=2.*\(age=21\): 1 row"):
        run_privacy(people(), spec(k=2), KEY)


def test_l_diversity_is_enforced() -> None:
    step = spec(
        k=3,
        l=2,
        sensitive="diagnosis",
        generalize_until_k=True,
        ladders={"age": [{"kind": "band", "width": 100}]},
    )
    assert run_privacy(people(), step, KEY).report is not None  # one class, 3 diagnoses
    narrow = spec(k=1, l=2, sensitive="diagnosis")
    with pytest.raises(ValidationFailed, match=r"l-diversity of 'diagnosis'.*l=1, below l=2"):
        run_privacy(people(), narrow, KEY)
