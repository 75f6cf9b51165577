"""Keyed pseudonyms (HMAC-SHA-256) and the key they are made with.

RELIABILITY.md lesson 9: a plain hash of an email or phone number is reversed by hashing a
dictionary of candidates, and a per-value salt makes the same person different in every source
so joins break. A keyed MAC is neither: without the key nobody can test a guess, and with the
same key the same value always gives the same pseudonym, in every source and every run.

**What is MACed.** The value's Polars string form, UTF-8 encoded: the integer ``42`` and the
text ``"42"`` share a pseudonym, ``42.0`` (a float) does not. Normalize first (trim, case) in a
``clean`` step if two sources spell the same person differently. Nulls stay null.

**What comes out.** The first ``PSEUDONYM_HEX_CHARS`` (32) lowercase hex characters of the MAC:
128 bits, so two different values collide with probability about ``n² / 2¹²⁹`` (negligible
below 10¹⁸ values), short enough to read. Changing the length changes every pseudonym, so it is
a constant, not an option.

**Where the key lives.** Never in the data, the project file or the metadata store: in an
environment variable (``SHIPYARD_PSEUDONYM_KEY`` by default) or a file outside the project,
read by ``load_key``. It must be at least 32 bytes. Rotating it changes every pseudonym (old and
new data no longer join), so rotate only together with a full re-run.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from shipyard.core.errors import InvalidSettings

if TYPE_CHECKING:
    from collections.abc import Mapping

DEFAULT_KEY_ENV = "SHIPYARD_PSEUDONYM_KEY"
MIN_KEY_BYTES = 32
PSEUDONYM_HEX_CHARS = 32
_HOW_TO = (
    'generate one with `python -c "import secrets; print(secrets.token_hex(32))"` and '
    "keep it outside the project and its data (a secret manager, or a file only the pipeline "
    "can read)"
)


def load_key(
    *,
    key_env: str = DEFAULT_KEY_ENV,
    key_file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> bytes:
    """Read the pseudonymization key from a file, else from an environment variable.

    The file's bytes are the key, less trailing carriage returns and line feeds (so a file
    written by ``echo`` works); the variable's value is the key as UTF-8. The key is never
    logged or put in a message.

    Args:
        key_env: The environment variable to read when ``key_file`` is None.
        key_file: A file holding the key; takes precedence over ``key_env``.
        environ: The environment to read (default: ``os.environ``).

    Raises:
        InvalidSettings: The variable is unset or empty, the file is unreadable, or the key is
            shorter than ``MIN_KEY_BYTES``; the message says how to set one.
    """
    if key_file is not None:
        path = Path(key_file).expanduser()
        try:
            key = path.read_bytes().rstrip(b"\r\n")
        except OSError as e:
            raise InvalidSettings(
                f"cannot read the pseudonymization key file {str(path)!r} "
                f"({type(e).__name__}); create it with a key of {MIN_KEY_BYTES}+ bytes: {_HOW_TO}"
            ) from e
        where = f"key file {str(path)!r}"
    else:
        value = (os.environ if environ is None else environ).get(key_env, "")
        if not value:
            raise InvalidSettings(
                f"no pseudonymization key: set the environment variable {key_env} (or "
                f"`key_file` in the privacy step) to a secret of {MIN_KEY_BYTES}+ bytes; "
                f"{_HOW_TO}"
            )
        key = value.encode()
        where = f"${key_env}"
    check_key(key, where)
    return key


def check_key(key: bytes, where: str = "the key") -> bytes:
    """Return ``key`` if it is bytes of at least ``MIN_KEY_BYTES``.

    Raises:
        InvalidSettings: Otherwise (the message gives the length, never the key).
    """
    if not isinstance(key, bytes):
        raise InvalidSettings(f"the pseudonymization key must be bytes, not {type(key).__name__}")
    if len(key) < MIN_KEY_BYTES:
        raise InvalidSettings(
            f"the pseudonymization key in {where} is {len(key)} bytes; it needs at least "
            f"{MIN_KEY_BYTES}: {_HOW_TO}"
        )
    return key


def pseudonym(value: str, key: bytes) -> str:
    """Return the pseudonym of one value (as ``pseudonymize_series`` would)."""
    return _mac_hex(check_key(key), value)[:PSEUDONYM_HEX_CHARS]


def subject_digest(value: str, key: bytes | None) -> str:
    """Return a digest that identifies an erased subject without storing the value.

    With a key: ``hmac-sha256:<64 hex>``, testable only by whoever holds the key. Without one:
    ``sha256:<64 hex>``, which anyone can test against a guessed value (an email or phone
    number is easily guessed): configure a key wherever erasure is audited.
    """
    if key is None:
        return "sha256:" + hashlib.sha256(value.encode()).hexdigest()
    return "hmac-sha256:" + _mac_hex(check_key(key), value)


def pseudonymize_series(series: pl.Series, key: bytes) -> pl.Series:
    """Replace every value of ``series`` by its pseudonym (nulls stay null).

    Each distinct value is MACed once and the results are mapped back with a hash join, so a
    million rows of a few distinct values cost a few MACs; a million distinct values take a
    few seconds (one HMAC per value in Python, from a keyed state prepared once and copied).
    """
    keyed = hmac.new(check_key(key), digestmod=hashlib.sha256)
    text = series.cast(pl.String)
    distinct = text.drop_nulls().unique()
    macs = []
    for value in distinct.to_list():
        mac = keyed.copy()
        mac.update(value.encode())
        macs.append(mac.hexdigest()[:PSEUDONYM_HEX_CHARS])
    return text.replace_strict(
        distinct, pl.Series(macs, dtype=pl.String), default=None, return_dtype=pl.String
    ).alias(series.name)


def pseudonymize_expr(column: str, key: bytes) -> pl.Expr:
    """Return an expression replacing ``column`` by its pseudonyms, batch by batch."""
    check_key(key)
    return (
        pl.col(column)
        .map_batches(
            lambda s: pseudonymize_series(s, key), return_dtype=pl.String, is_elementwise=True
        )
        .alias(column)
    )


def _mac_hex(key: bytes, value: str) -> str:
    return hmac.digest(key, value.encode(), "sha256").hex()
