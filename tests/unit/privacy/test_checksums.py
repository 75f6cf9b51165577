"""Luhn and IBAN mod-97 expressions against published numbers and plain-Python references."""

from __future__ import annotations

import random
import string
from collections.abc import Callable, Sequence
from typing import Any

import polars as pl

from shipyard.privacy.checksums import iban_valid, luhn_valid

# Test numbers published by the card networks / payment processors.
VALID_CARDS = [
    "4111111111111111",  # Visa
    "4012888888881881",  # Visa
    "5555555555554444",  # Mastercard
    "2223003122003222",  # Mastercard 2-series
    "378282246310005",  # American Express (15 digits)
    "6011111111111117",  # Discover
    "3530111333300000",  # JCB
    "4222222222222",  # Visa, 13 digits
]
# Published example IBANs (ECBS / national banks).
VALID_IBANS = [
    "GB82WEST12345698765432",
    "DE89370400440532013000",
    "FR1420041010050500013M02606",
    "NL91ABNA0417164300",
    "NO9386011117947",  # shortest: 15
    "MT84MALT011000012345MTLCAST001S",  # 31, with letters in the account part
    "BE68539007547034",
]


def luhn_reference(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    return 12 <= len(digits) <= 19 and total % 10 == 0


def iban_reference(iban: str) -> bool:
    moved = iban[4:] + iban[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def check(expr_of: Callable[[pl.Expr], pl.Expr], values: Sequence[str | None]) -> list[Any]:
    frame = pl.DataFrame({"v": values}, schema={"v": pl.String})
    return frame.select(expr_of(pl.col("v"))).to_series().to_list()


def test_published_cards_pass_and_one_changed_digit_fails() -> None:
    assert check(luhn_valid, VALID_CARDS) == [True] * len(VALID_CARDS)
    changed = [c[:-1] + str((int(c[-1]) + 1) % 10) for c in VALID_CARDS]
    assert check(luhn_valid, changed) == [False] * len(changed)


def test_luhn_refuses_wrong_shapes_and_keeps_nulls() -> None:
    assert (
        check(luhn_valid, ["0", "4111-1111-1111-1111", "41111111111", "4" * 20, "abc"])
        == [False] * 5
    )
    assert check(luhn_valid, [None]) == [None]
    assert check(luhn_valid, []) == []


def test_luhn_matches_reference_on_random_numbers() -> None:
    rng = random.Random(7)
    values = ["".join(rng.choices(string.digits, k=rng.randint(12, 19))) for _ in range(3000)]
    values += VALID_CARDS  # so that both outcomes are certainly present
    expected = [luhn_reference(v) for v in values]
    assert 0.05 < sum(expected) / len(expected) < 0.2  # about one in ten passes by chance
    assert check(luhn_valid, values) == expected


def test_published_ibans_pass_and_changed_ones_fail() -> None:
    assert check(iban_valid, VALID_IBANS) == [True] * len(VALID_IBANS)
    swapped = [i[:2] + i[3] + i[2] + i[4:] for i in VALID_IBANS if i[2] != i[3]]
    assert check(iban_valid, swapped) == [False] * len(swapped)
    assert check(iban_valid, ["GB82 WEST 1234 5698 7654 32", "gb82west12345698765432"]) == [
        False,
        False,
    ]  # compact upper case only: detect normalizes first


def test_iban_matches_reference_on_random_codes() -> None:
    rng = random.Random(11)
    values = [
        "".join(rng.choices(string.ascii_uppercase, k=2))
        + "".join(rng.choices(string.digits, k=2))
        + "".join(rng.choices(string.digits + string.ascii_uppercase, k=rng.randint(11, 30)))
        for _ in range(3000)
    ]
    values += VALID_IBANS
    expected = [iban_reference(v) for v in values]
    assert 0 < sum(expected) < 100  # about one in 97 passes by chance
    assert check(iban_valid, values) == expected
