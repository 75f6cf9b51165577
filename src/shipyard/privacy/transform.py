"""The ``privacy:`` step: pseudonymize, mask, generalize and suppress columns of a frame.

In ``shipyard.yaml``::

    privacy:
      pseudonymize: [email, customer_id]     # keyed HMAC-SHA-256, joinable across sources
      mask: {phone: {keep_last: 4}}          # "*******0958"
      generalize:
        age: {kind: band, width: 10}
        postcode: {kind: truncate, keep: 3}
        birth_date: {kind: date, to: year}
      suppress: [full_name]                  # dropped
      key_env: SHIPYARD_PSEUDONYM_KEY         # where the key is (never the key itself)

Each column takes at most one treatment. The key comes from ``key_file`` when set, else from
the environment variable ``key_env``; the spec only says where it is, so the project file can
be committed. ``apply_privacy`` stays lazy: pseudonyms are computed batch by batch over the
distinct values of each batch (see ``shipyard.privacy.pseudonym``), everything else is a plain
Polars expression.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

from shipyard.core.errors import InvalidArgument, InvalidSettings
from shipyard.privacy.generalize import GeneralizeRule, generalize_expr
from shipyard.privacy.pseudonym import DEFAULT_KEY_ENV, check_key, load_key, pseudonymize_expr

if TYPE_CHECKING:
    from collections.abc import Mapping

_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class MaskRule(BaseModel):
    """Hide all but the last (and optionally first) characters of a value.

    Every hidden character becomes ``char``, so the value's length still shows; a value no
    longer than ``keep_first + keep_last`` is hidden whole.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    keep_last: int = Field(4, ge=0, le=64)
    keep_first: int = Field(0, ge=0, le=64)
    char: str = Field("*", min_length=1, max_length=1)


class PrivacySpec(BaseModel):
    """What the privacy step does to which columns, and where its key is."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pseudonymize: list[str] = Field(default_factory=list)
    mask: dict[str, MaskRule] = Field(default_factory=dict)
    generalize: dict[str, GeneralizeRule] = Field(default_factory=dict)
    suppress: list[str] = Field(default_factory=list)
    key_env: str = Field(DEFAULT_KEY_ENV, pattern=_ENV_NAME)
    key_file: Path | None = None

    @model_validator(mode="after")
    def _one_treatment_per_column(self) -> PrivacySpec:
        seen: dict[str, str] = {}
        for treatment, columns in (
            ("pseudonymize", self.pseudonymize),
            ("mask", list(self.mask)),
            ("generalize", list(self.generalize)),
            ("suppress", self.suppress),
        ):
            for column in columns:
                if column in seen:
                    raise ValueError(
                        f"column {column!r} is listed under both {seen[column]} and "
                        f"{treatment}; give each column one treatment"
                    )
                seen[column] = treatment
        return self

    @property
    def columns(self) -> list[str]:
        """Every column the spec touches."""
        return [*self.pseudonymize, *self.mask, *self.generalize, *self.suppress]

    def load_key(self, environ: Mapping[str, str] | None = None) -> bytes:
        """Read the key from ``key_file`` or ``$key_env`` (see ``pseudonym.load_key``).

        Raises:
            InvalidSettings: No key there, or one shorter than 32 bytes.
        """
        return load_key(key_env=self.key_env, key_file=self.key_file, environ=environ)


def apply_privacy(lf: pl.LazyFrame, spec: PrivacySpec, key: bytes | None) -> pl.LazyFrame:
    """Return ``lf`` with the spec's treatments applied; columns keep their order.

    Args:
        lf: The rows (a DataFrame is accepted and made lazy).
        spec: Which columns to treat how.
        key: The pseudonymization key (``spec.load_key()``); needed only when the spec
            pseudonymizes a column.

    Raises:
        InvalidArgument: A column the spec names is not in the frame, or a rule does not fit
            its column's type.
        InvalidSettings: A key is needed and missing, or shorter than 32 bytes.
    """
    lf = lf.lazy()
    schema = lf.collect_schema()
    missing = [c for c in spec.columns if c not in schema]
    if missing:
        raise InvalidArgument(
            f"the privacy step names column(s) {', '.join(map(repr, missing))} that the data "
            f"does not have (columns: {', '.join(schema.names())})"
        )
    exprs: list[pl.Expr] = []
    if spec.pseudonymize:
        if key is None:
            raise InvalidSettings(
                f"the privacy step pseudonymizes {', '.join(map(repr, spec.pseudonymize))} "
                f"and needs a key: set ${spec.key_env} (or key_file) to a secret of 32+ bytes "
                "and pass spec.load_key()"
            )
        exprs += [pseudonymize_expr(c, check_key(key)) for c in spec.pseudonymize]
    exprs += [mask_expr(c, rule) for c, rule in spec.mask.items()]
    exprs += [generalize_expr(c, rule, schema[c]) for c, rule in spec.generalize.items()]
    if exprs:
        lf = lf.with_columns(exprs)
    return lf.drop(spec.suppress) if spec.suppress else lf


def mask_expr(column: str, rule: MaskRule) -> pl.Expr:
    """Return the expression that masks ``column`` (as text) by ``rule``; nulls stay null."""
    text = pl.col(column).cast(pl.String)
    length = text.str.len_chars().cast(pl.Int64)
    kept = rule.keep_first + rule.keep_last
    # "(?s)." hides line breaks too; "$" is special in a replacement and is doubled.
    char = rule.char.replace("$", "$$")
    hidden = text.str.slice(rule.keep_first, (length - kept).clip(0)).str.replace_all("(?s).", char)
    last = text.str.slice(-rule.keep_last) if rule.keep_last else pl.lit("")
    masked = pl.concat_str([text.str.slice(0, rule.keep_first), hidden, last])
    # Values too short to keep anything are hidden whole.
    whole = text.str.replace_all("(?s).", char)
    return pl.when(length > kept).then(masked).otherwise(whole).alias(column)
