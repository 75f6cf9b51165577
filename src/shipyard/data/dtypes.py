"""The contract's type names and the Polars dtypes they mean.

Project files say ``int64`` or ``datetime``; code works with Polars dtypes. One table maps the
two so every module (connectors, harmonization, validation) agrees on what a name means.
"""

from __future__ import annotations

import polars as pl

from shipyard.core.errors import InvalidArgument

DTYPES: dict[str, pl.DataType] = {
    "int8": pl.Int8(),
    "int16": pl.Int16(),
    "int32": pl.Int32(),
    "int64": pl.Int64(),
    "uint8": pl.UInt8(),
    "uint16": pl.UInt16(),
    "uint32": pl.UInt32(),
    "uint64": pl.UInt64(),
    "float32": pl.Float32(),
    "float64": pl.Float64(),
    "string": pl.String(),
    "bool": pl.Boolean(),
    "date": pl.Date(),
    "datetime": pl.Datetime("us"),
    "datetime_utc": pl.Datetime("us", "UTC"),
    "category": pl.Categorical(),
}
ALIASES = {"int": "int64", "float": "float64", "str": "string", "boolean": "bool", "text": "string"}


def to_polars(name: str) -> pl.DataType:
    """Return the Polars dtype for a contract type name.

    Raises:
        InvalidArgument: The name is not one of ``DTYPES`` (the message lists them).
    """
    key = ALIASES.get(name, name)
    try:
        return DTYPES[key]
    except KeyError:
        allowed = ", ".join(sorted(DTYPES))
        raise InvalidArgument(f"unknown type {name!r}; use one of: {allowed}") from None


def type_name(dtype: pl.DataType) -> str:
    """Return the contract type name of a Polars dtype (its string form when unmapped)."""
    for name, candidate in DTYPES.items():
        if dtype == candidate:
            return name
    if isinstance(dtype, pl.Datetime):
        return "datetime" if dtype.time_zone is None else "datetime_utc"
    return str(dtype)
