"""Keyed pseudonyms: deterministic per key, joinable across frames, and a key kept apart."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from shipyard.core.errors import InvalidSettings
from shipyard.privacy.pseudonym import (
    PSEUDONYM_HEX_CHARS,
    load_key,
    pseudonym,
    pseudonymize_series,
    subject_digest,
)
from shipyard.privacy.transform import PrivacySpec, apply_privacy

KEY = b"0123456789abcdef0123456789abcdef-key-one"
OTHER_KEY = b"fedcba9876543210fedcba9876543210-key-two"


def reference(value: str, key: bytes) -> str:
    """HMAC-SHA-256 straight from the standard library, truncated as documented."""
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:PSEUDONYM_HEX_CHARS]


def test_pseudonyms_are_the_truncated_hmac_and_nulls_stay_null() -> None:
    series = pl.Series("email", ["ann@example.com", None, "bob@example.com", "ann@example.com"])
    out = pseudonymize_series(series, KEY)
    assert out.name == "email"
    assert out.to_list() == [
        reference("ann@example.com", KEY),
        None,
        reference("bob@example.com", KEY),
        reference("ann@example.com", KEY),
    ]
    assert pseudonym("ann@example.com", KEY) == out[0]
    assert len(out[0]) == PSEUDONYM_HEX_CHARS


def test_deterministic_per_key_and_different_across_keys() -> None:
    values = pl.Series([f"user{i}@example.com" for i in range(200)])
    first, again = pseudonymize_series(values, KEY), pseudonymize_series(values, KEY)
    other = pseudonymize_series(values, OTHER_KEY)
    assert first.to_list() == again.to_list()
    assert first.n_unique() == 200  # no collisions
    assert not set(first.to_list()) & set(other.to_list())


def test_integers_and_their_text_share_a_pseudonym() -> None:
    ints = pseudonymize_series(pl.Series([42, 7]), KEY)
    texts = pseudonymize_series(pl.Series(["42", "7"]), KEY)
    assert ints.to_list() == texts.to_list()


def customers_and_orders() -> tuple[pl.DataFrame, pl.DataFrame]:
    customers = pl.DataFrame(
        {
            "email": ["ann@example.com", "bob@example.com", "cy@example.com", "di@example.com"],
            "segment": ["a", "b", "a", "c"],
        }
    )
    orders = pl.DataFrame(
        {
            "order_id": [1, 2, 3, 4, 5, 6],
            "email": [
                "bob@example.com",
                "ann@example.com",
                "bob@example.com",
                "zed@example.com",  # no customer
                None,
                "cy@example.com",
            ],
        }
    )
    return customers, orders


def test_joins_on_pseudonyms_match_joins_on_clear_keys() -> None:
    customers, orders = customers_and_orders()
    spec = PrivacySpec(pseudonymize=["email"])
    clear = orders.join(customers, on="email", how="left").drop("email").sort("order_id")
    masked_c = apply_privacy(customers.lazy(), spec, KEY).collect()
    masked_o = apply_privacy(orders.lazy(), spec, KEY).collect()
    assert not set(masked_c["email"]) & set(customers["email"])  # really pseudonymized
    joined = masked_o.join(masked_c, on="email", how="left").drop("email").sort("order_id")
    assert_frame_equal(joined, clear)
    assert joined["segment"].null_count() == 2  # zed and the null stay unmatched

    # Another key (another source's, a rotated one) joins nothing.
    other = apply_privacy(customers.lazy(), spec, OTHER_KEY).collect()
    assert masked_o.join(other, on="email", how="inner").height == 0


def test_streaming_engine_gives_the_same_pseudonyms() -> None:
    frame = pl.DataFrame({"id": [i % 37 for i in range(5000)], "x": list(range(5000))})
    lf = apply_privacy(frame.lazy(), PrivacySpec(pseudonymize=["id"]), KEY)
    assert_frame_equal(lf.collect(engine="streaming"), lf.collect())
    assert lf.collect()["id"].n_unique() == 37


def test_missing_key_says_how_to_set_one() -> None:
    with pytest.raises(InvalidSettings, match=r"set the environment variable MY_KEY.*secrets"):
        load_key(key_env="MY_KEY", environ={})
    customers, _ = customers_and_orders()
    with pytest.raises(InvalidSettings, match="needs a key"):
        apply_privacy(customers.lazy(), PrivacySpec(pseudonymize=["email"]), None)


def test_short_key_is_refused_without_echoing_it() -> None:
    secret = "short-secret-value"
    with pytest.raises(InvalidSettings, match="18 bytes; it needs at least 32") as raised:
        load_key(key_env="K", environ={"K": secret})
    assert secret not in str(raised.value)
    with pytest.raises(InvalidSettings, match="at least 32"):
        pseudonym("x", b"too short")


def test_key_from_environment_and_from_file(tmp_path: Path) -> None:
    assert load_key(environ={"SHIPYARD_PSEUDONYM_KEY": KEY.decode()}) == KEY
    path = tmp_path / "pseudonym.key"
    path.write_bytes(KEY + b"\n")  # as `echo` writes it
    assert load_key(key_file=path, environ={}) == KEY
    spec = PrivacySpec(pseudonymize=["email"], key_file=path)
    assert spec.load_key(environ={}) == KEY  # the file wins over an unset variable
    with pytest.raises(InvalidSettings, match="cannot read the pseudonymization key file"):
        load_key(key_file=tmp_path / "missing.key")


def test_subject_digest_is_keyed_when_a_key_is_given() -> None:
    value = "ann@example.com"
    assert (
        subject_digest(value, KEY)
        == "hmac-sha256:" + hmac.new(KEY, value.encode(), hashlib.sha256).hexdigest()
    )
    assert subject_digest(value, None) == "sha256:" + hashlib.sha256(value.encode()).hexdigest()
