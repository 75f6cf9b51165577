"""PII detection: exactly the personal columns are flagged, decoys are not."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from shipyard.core.errors import InvalidArgument
from shipyard.privacy.detect import PiiFinding, detect_pii, kind_from_name

N = 8


def people() -> pl.DataFrame:
    """Neutral names (``c_*``) so that values alone must decide; the rest are decoys."""
    return pl.DataFrame(
        {
            "c_mail": [
                "ann@example.com", "bob.smith@mail.co.uk", "x+tag@sub.example.org",
                "e_f@example.io", "zoe@example.com", None, "li@example.de", "  sam@ex.fr ",
            ],
            "c_phone": [
                "+44 20 7946 0958", "(555) 123-4567", "555-123-4567", "+1 (555) 123-4567",
                "0049 30 1234567", "+4915112345678", "555.123.4567", "020 7946 0958",
            ],
            "c_card": [
                "4111 1111 1111 1111", "5555-5555-5555-4444", "378282246310005",
                "6011111111111117", "4012888888881881", "3530111333300000",
                "2223003122003222", "4222222222222",
            ],
            "c_card_bad": [  # last digit changed: Luhn fails
                "4111 1111 1111 1112", "5555-5555-5555-4445", "378282246310006",
                "6011111111111118", "4012888888881882", "3530111333300001",
                "2223003122003223", "4222222222223",
            ],
            "c_iban": [
                "GB82 WEST 1234 5698 7654 32", "DE89370400440532013000",
                "FR1420041010050500013M02606", "NL91ABNA0417164300", "NO9386011117947",
                "BE68539007547034", "gb82west12345698765432", None,
            ],
            "c_ip": [
                "192.168.0.1", "10.0.0.255", "8.8.8.8", "2001:db8::1", "fe80::1",
                "2001:0db8:85a3:0000:0000:8a2e:0370:7334", "::1", "172.16.254.3",
            ],
            "c_ssn": [
                "123-45-6789", "078-05-1120", "219-09-9999", "457-55-5462",
                "AB 12 34 56 C", "QQ123456C", "536-22-1234", "111-22-3333",
            ],
            "date_of_birth": [dt.date(1980 + i, 1 + i, 1 + i) for i in range(N)],
            "firstName": ["Ann", "Bob", "Cy", "Di", "Ed", "Flo", "Gus", "Hal"],
            "post_code": ["SW1A 1AA", "EC1A 1BB", "W1A 0AX", "M1 1AE", "B33 8TH", "CR2 6XH",
                          "DN55 1PT", "LS1 1UR"],
            # decoys
            "price": [19.99, 4111111111111111.0, 5.0, 7.5, 5555555555554444.0, 1.0, 2.0, 3.0],
            "order_id": [5551234567, 4111111111111112, 3, 4, 20210304, 19216801, 7, 8],
            "notes": [
                "call me at +44 20 7946 0958", "mail ann@example.com", "ok", "fine",
                "card 4111 1111 1111 1111 declined", "n/a", "", "later",
            ],
            "created": [f"2021-03-0{i + 1}" for i in range(N)],
            "amount_text": ["12345.67", "1.50", "99999.99", "100.00", "0.99", "12.00",
                            "1234567.89", "5.55"],
            "clock": ["12:30:45", "01:02:03", "11:11:11", "10:00:00", "23:59:59", "00:00:00",
                      "06:30:00", "18:45:10"],
            "version": ["1.2.3", "10.4.1", "2.0.0", "0.9.12", "3.3.3", "1.0.0", "4.5.6", "7.8.9"],
            "email_verified": [True, False, True, True, False, True, True, False],
            "phone_count": [1, 2, 0, 1, 3, 1, 1, 2],
        }
    )  # fmt: skip


def test_flags_exactly_the_personal_columns() -> None:
    findings = detect_pii(people())
    assert {c: (f.kind, f.by) for c, f in findings.items()} == {
        "c_mail": ("email", "values"),
        "c_phone": ("phone", "values"),
        "c_card": ("payment_card", "values"),
        "c_iban": ("iban", "values"),
        "c_ip": ("ip_address", "values"),
        "c_ssn": ("national_id", "values"),
        "date_of_birth": ("date_of_birth", "name"),
        "firstName": ("person_name", "name"),
        "post_code": ("postal_code", "name"),
    }
    assert findings["c_mail"].share == 1.0  # the null is not counted, the padded one is
    assert findings["c_iban"].share == 1.0  # spaced and lower-case IBANs are normalized
    assert findings["date_of_birth"].share is None


def test_lazy_frames_and_column_order_are_kept() -> None:
    frame = people()
    eager, lazy = detect_pii(frame), detect_pii(frame.lazy())
    assert eager == lazy
    assert list(eager) == [c for c in frame.columns if c in eager]


def test_min_share_decides_mixed_columns() -> None:
    mixed = pl.DataFrame({"c": ["a@example.com", "b@example.com", "x", "y", "z"]})  # 40 %
    assert detect_pii(mixed, min_share=0.5) == {}
    assert detect_pii(mixed, min_share=0.4) == {"c": PiiFinding("c", "email", 0.4, "values")}


def test_a_named_column_with_unmatched_values_is_flagged_by_name_with_its_share() -> None:
    frame = pl.DataFrame({"phone": ["call reception", "ext 12", "+44 20 7946 0958", None]})
    found = detect_pii(frame)["phone"]
    assert (found.kind, found.by) == ("phone", "name")
    assert found.share == pytest.approx(1 / 3)


def test_integer_card_numbers_are_found_but_integer_ids_are_not() -> None:
    cards = [4111111111111111, 5555555555554444, 6011111111111117, 4012888888881881]
    frame = pl.DataFrame({"a": cards, "b": [c + 1 for c in cards], "c": list(range(4))})
    assert {c: f.kind for c, f in detect_pii(frame).items()} == {"a": "payment_card"}


def test_sampling_limits_what_is_read() -> None:
    frame = pl.DataFrame({"c": ["a@example.com"] * 10 + ["nothing"] * 990})
    assert detect_pii(frame.lazy(), sample_rows=10) != {}  # the head: all emails
    assert detect_pii(frame, sample_rows=100) == {}  # a random sample: ~1 % emails


def test_empty_and_all_null_columns_are_not_flagged_on_values() -> None:
    schema = {"c": pl.String, "d": pl.String}
    frame = pl.DataFrame({"c": [None, None], "d": ["", " "]}, schema=schema)
    assert detect_pii(frame) == {}
    assert detect_pii(frame.head(0)) == {}


@pytest.mark.parametrize(
    ("name", "dtype", "kind"),
    [
        ("email", pl.String, "email"),
        ("EmailAddress", pl.String, "email"),
        ("e-mail", pl.String, "email"),
        ("ip_address", pl.String, "ip_address"),
        ("home_address", pl.String, "address"),
        ("street", pl.String, "address"),
        ("mobileNumber", pl.String, "phone"),
        ("DOB", pl.Date, "date_of_birth"),
        ("birth_date", pl.String, "date_of_birth"),
        ("credit_card", pl.String, "payment_card"),
        ("card_number", pl.Int64, "payment_card"),
        ("IBAN", pl.String, "iban"),
        ("ssn", pl.String, "national_id"),
        ("national_id", pl.String, "national_id"),
        ("zip", pl.Int64, "postal_code"),
        ("last_name", pl.String, "person_name"),
        ("name", pl.String, "person_name"),
        ("customer_name", pl.String, "person_name"),
        # not PII by name
        ("product_name", pl.String, None),
        ("card_type", pl.String, None),
        ("email_verified", pl.String, None),
        ("phone_count", pl.Int64, None),
        ("ip_country", pl.String, None),
        ("zip", pl.Float64, None),
        ("email", pl.Boolean, None),
        ("shipping", pl.String, None),
        ("price", pl.Float64, None),
        ("description", pl.String, None),
    ],
)
def test_kind_from_name(name: str, dtype: pl.DataType, kind: str | None) -> None:
    assert kind_from_name(name, dtype) == kind


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="sample_rows"):
        detect_pii(people(), sample_rows=0)
    with pytest.raises(InvalidArgument, match="min_share"):
        detect_pii(people(), min_share=0)
    with pytest.raises(InvalidArgument, match="Polars frame"):
        detect_pii({"a": [1]})  # type: ignore[arg-type]
