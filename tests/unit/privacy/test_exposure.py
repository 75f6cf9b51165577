"""What each role sees of raw personal data in shown rows, and how it is masked."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from shipyard.privacy.exposure import RAW_LINE, Exposure, decide, raw_pii_columns
from shipyard.security.roles import Role
from tests.unit.security.conftest import identity

TAGS = {"email": "email", "phone": "phone", "customer": "pseudonymized", "card": "masked"}
COLUMNS = ["id", "email", "phone", "customer", "card", "age"]


def rows() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "id": [1, 2, 3],
            "email": ["ann@example.com", None, "bo@example.org"],
            "phone": ["+44 20 7946 0958", "555-123-4567", None],
            "customer": ["a1b2", "c3d4", "e5f6"],
            "card": ["************1111", None, "************4444"],
            "age": [31, 42, 57],
        }
    )


def test_raw_columns_are_the_tagged_ones_not_treated_by_the_privacy_step() -> None:
    assert raw_pii_columns(TAGS, COLUMNS) == {"email": "email", "phone": "phone"}
    # Only columns about to be shown count, in their display order.
    assert list(raw_pii_columns(TAGS, ["phone", "age", "email"])) == ["phone", "email"]
    assert raw_pii_columns(TAGS, ["id", "age"]) == {}
    assert raw_pii_columns({}, COLUMNS) == {}


def test_a_rejected_line_is_raw_input_even_without_tags() -> None:
    columns = ["_source", "_row", RAW_LINE, "_failed_checks"]
    assert raw_pii_columns({}, columns) == {RAW_LINE: "raw line"}


@pytest.mark.parametrize("role", [None, Role.VIEWER, Role.DATA_SCIENTIST, Role.ML_ENGINEER])
def test_below_admin_raw_values_are_masked(role: Role | None) -> None:
    exposure = decide(identity(role), TAGS, COLUMNS)
    assert (exposure.masked, exposure.revealed, exposure.denied) == (("email", "phone"), (), False)
    shown = exposure.apply(rows())
    assert shown["email"].to_list() == ["<email>", None, "<email>"]  # nulls still show
    assert shown["phone"].to_list() == ["<phone>", "<phone>", None]
    # Treated and untagged columns are shown as stored.
    for column in ("id", "customer", "card", "age"):
        assert shown[column].to_list() == rows()[column].to_list()
    text = str(shown.to_dicts())
    assert "example" not in text
    assert "7946" not in text


def test_admin_sees_raw_values() -> None:
    exposure = decide(identity(Role.ADMIN), TAGS, COLUMNS)
    assert (exposure.revealed, exposure.masked, exposure.denied) == (("email", "phone"), (), False)
    assert exposure.apply(rows()).equals(rows())


@pytest.mark.parametrize("role", [None, Role.VIEWER, Role.DATA_SCIENTIST, Role.ML_ENGINEER])
def test_asking_for_raw_values_without_the_permission_is_denied(role: Role | None) -> None:
    exposure = decide(identity(role), TAGS, COLUMNS, raw_requested=True)
    assert exposure.denied
    assert "data.read_pii needs admin" in exposure.reason or "holds no role" in exposure.reason
    # Denied even where the columns hold none: the permission, not the data, decides.
    assert decide(identity(role), {}, ["id"], raw_requested=True).denied


def test_admin_asking_for_raw_values_is_allowed() -> None:
    exposure = decide(identity(Role.ADMIN), TAGS, COLUMNS, raw_requested=True)
    assert not exposure.denied
    assert exposure.revealed == ("email", "phone")


def test_masking_an_empty_frame_or_a_missing_column_is_harmless() -> None:
    exposure = Exposure(raw={"email": "email", "gone": "phone"})
    empty = rows().head(0)
    assert exposure.apply(empty).height == 0
    shown = exposure.apply(rows().select("id", "email"))
    assert shown.columns == ["id", "email"]
    assert shown["email"].dtype == pl.String
    # A non-text raw column (a date of birth stored as a date) becomes masked text.
    dates = pl.DataFrame({"dob": [date(1990, 1, 2), None]})
    dob = Exposure(raw={"dob": "date_of_birth"}).apply(dates)
    assert dob["dob"].to_list() == ["<date_of_birth>", None]
