"""The ``privacy`` pipeline step: treatments, then a k-anonymity check or generalization.

In ``shipyard.yaml``'s ``steps:``::

    - privacy:
        pseudonymize: [email, phone]
        mask: {card_number: {keep_last: 4}}
        kanon:
          quasi_identifiers: [age, postcode]
          k: 5
          l: 2                          # optional, needs `sensitive`
          sensitive: diagnosis
          generalize_until_k: true      # else the step fails when k does not hold
          ladders:
            age: [{kind: band, width: 10}, {kind: band, width: 20}]
            postcode: [{kind: truncate, keep: 3}, {kind: truncate, keep: 1}]

``run_privacy`` is the pure part (frame in, frame out); ``shipyard.pipeline.privacy_stage``
caches it, records its report and tags the columns it treated.

**k that does not hold.** With ``generalize_until_k: false`` the step fails with
``ValidationFailed`` naming the smallest classes; with ``true`` it climbs the ladders
(``kanon.generalize_until_k``) and, when they are spent, suppresses the rows of the classes
still too small; those rows are returned apart, so the pipeline can keep them in quarantine
and count them. l-diversity is measured and enforced but never generalized towards: a class
with too few sensitive values fails the step.

**Cache identity of the key.** A changed key changes every pseudonym, so it must invalidate
the step's cache; the key itself must never reach a cache key, a log or the metadata store.
``key_fingerprint`` is an HMAC of a constant under the key: equal keys give equal
fingerprints, and the fingerprint says nothing about the key.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

from shipyard.core.errors import ValidationFailed
from shipyard.privacy.generalize import GeneralizeRule, generalize_expr
from shipyard.privacy.kanon import (
    AppliedStep,
    KAnonymityReport,
    generalize_until_k,
    k_anonymity,
)
from shipyard.privacy.pseudonym import check_key
from shipyard.privacy.transform import PrivacySpec, apply_privacy

if TYPE_CHECKING:
    from collections.abc import Mapping

#: The tag of a column whose values were replaced by keyed pseudonyms.
PSEUDONYMIZED = "pseudonymized"
#: The tag of a masked column (its values are mostly hidden, but still personal data).
MASKED = "masked"
_FINGERPRINT_DOMAIN = b"shipyard-privacy-step-key/1"
_SHOWN_CLASSES = 5


class KAnonSpec(BaseModel):
    """The ``kanon:`` block of a privacy step."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    quasi_identifiers: list[str] = Field(min_length=1)
    k: int = Field(ge=1)
    l: int | None = Field(None, ge=1)  # noqa: E741 - the letter the literature uses
    sensitive: str | None = None
    generalize_until_k: bool = False
    ladders: dict[str, list[GeneralizeRule]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> KAnonSpec:
        if self.l is not None and self.sensitive is None:
            raise ValueError("`l` needs `sensitive`: the column whose values must vary")
        if self.sensitive is not None and self.sensitive in self.quasi_identifiers:
            raise ValueError(f"{self.sensitive!r} is both a quasi-identifier and `sensitive`")
        strays = sorted(set(self.ladders) - set(self.quasi_identifiers))
        if strays:
            raise ValueError(f"ladders for {', '.join(strays)}, which are not quasi_identifiers")
        if self.ladders and not self.generalize_until_k:
            raise ValueError("ladders are only climbed with `generalize_until_k: true`")
        return self


class PrivacyStepSpec(PrivacySpec):
    """What ``- privacy: {...}`` declares: the treatments, and optionally ``kanon``."""

    kanon: KAnonSpec | None = None

    @model_validator(mode="after")
    def _quasi_identifiers_kept(self) -> PrivacyStepSpec:
        if self.kanon is not None:
            dropped = [c for c in self.kanon.quasi_identifiers if c in self.suppress]
            if dropped:
                raise ValueError(
                    f"quasi-identifier(s) {', '.join(dropped)} are suppressed (dropped) before "
                    "k-anonymity is measured; remove them from one list"
                )
        return self

    @property
    def treatments(self) -> PrivacySpec:
        """The treatments alone, as ``apply_privacy`` takes them."""
        return PrivacySpec.model_validate(self.model_dump(exclude={"kanon"}))


@dataclass(frozen=True)
class PrivacyOutcome:
    """What the step did.

    Attributes:
        frame: The treated rows that go on.
        suppressed: Rows dropped to reach k (generalized as far as the ladders went), or None.
        report: The k-anonymity report of ``frame``, when ``kanon`` was set.
        steps: The generalizations and suppression applied to reach k, in order.
    """

    frame: pl.DataFrame
    suppressed: pl.DataFrame | None
    report: KAnonymityReport | None
    steps: tuple[AppliedStep, ...] = ()

    def summary(self) -> dict[str, Any]:
        """Return the report and steps as JSON-ready values (the step's ``kanon.json``)."""
        if self.report is None:
            return {}
        return {
            **report_dict(self.report),
            "rows_suppressed": 0 if self.suppressed is None else self.suppressed.height,
            "steps": [
                {
                    "action": s.action,
                    "column": s.column,
                    "rule": None if s.rule is None else s.rule.model_dump(mode="json"),
                    "level": s.level,
                    "rows_suppressed": s.rows_suppressed,
                }
                for s in self.steps
            ],
        }


def run_privacy(
    frame: pl.LazyFrame | pl.DataFrame, spec: PrivacyStepSpec, key: bytes | None
) -> PrivacyOutcome:
    """Apply the step's treatments, then make sure ``kanon`` holds.

    Args:
        frame: The rows.
        spec: The step.
        key: The pseudonymization key (needed when the spec pseudonymizes).

    Raises:
        InvalidArgument: A column the spec names is missing, or a rule does not fit its column.
        InvalidSettings: A key is needed and missing or too short.
        ValidationFailed: k (with ``generalize_until_k: false``) or l does not hold; the
            message names the smallest classes.
    """
    treated = apply_privacy(frame.lazy(), spec.treatments, key).collect()
    kanon = spec.kanon
    if kanon is None:
        return PrivacyOutcome(treated, None, None)
    qis = kanon.quasi_identifiers
    if not kanon.generalize_until_k:
        report = k_anonymity(treated, qis, sensitive=kanon.sensitive)
        _require(report, kanon)
        return PrivacyOutcome(treated, None, report)
    kept, steps, report = generalize_until_k(
        treated, qis, kanon.k, kanon.ladders, sensitive=kanon.sensitive
    )
    suppressed = None
    if steps and steps[-1].action == "suppress":
        generalized = _generalized(treated, steps)
        suppressed = generalized.filter(pl.len().over(qis) < kanon.k)
    _require(report, kanon)
    return PrivacyOutcome(kept, suppressed, report, tuple(steps))


def key_fingerprint(key: bytes) -> str:
    """Return an HMAC-SHA-256 of a fixed constant under ``key``: its identity for caches."""
    return hmac.new(check_key(key), _FINGERPRINT_DOMAIN, hashlib.sha256).hexdigest()


def treated_tags(spec: PrivacySpec, before: Mapping[str, str]) -> dict[str, str]:
    """Return the personal-data tags after the treatments, from the tags ``before`` them.

    Pseudonymized columns are tagged ``pseudonymized`` and masked ones ``masked`` whatever
    they held; suppressed columns are gone; generalized and untouched ones keep their tag.
    """
    tags = {c: t for c, t in before.items() if c not in spec.suppress}
    tags.update(dict.fromkeys(spec.pseudonymize, PSEUDONYMIZED))
    tags.update(dict.fromkeys(spec.mask, MASKED))
    return tags


def report_dict(report: KAnonymityReport) -> dict[str, Any]:
    """Return a k-anonymity report as JSON-ready values."""
    return {
        "quasi_identifiers": list(report.quasi_identifiers),
        "sensitive": report.sensitive,
        "rows": report.rows,
        "k": report.k,
        "l": report.l,
        "classes": report.classes,
        "smallest": [{"values": c.values, "rows": c.size} for c in report.smallest],
        "class_sizes": [{"size": s, "classes": n} for s, n in report.class_sizes],
    }


def _generalized(frame: pl.DataFrame, steps: list[AppliedStep]) -> pl.DataFrame:
    """Return ``frame`` with the last rule ``generalize_until_k`` reached on each column."""
    last: dict[str, GeneralizeRule] = {}
    for step in steps:
        if step.column is not None and step.rule is not None:
            last[step.column] = step.rule
    if not last:
        return frame
    return frame.with_columns(
        [generalize_expr(c, rule, frame.schema[c]) for c, rule in last.items()]
    )


def _require(report: KAnonymityReport, kanon: KAnonSpec) -> None:
    if report.satisfies(kanon.k, kanon.l):
        return
    qis = ", ".join(report.quasi_identifiers)
    classes = "; ".join(
        f"{_values(c.values)}: {c.size} row(s)" for c in report.smallest[:_SHOWN_CLASSES]
    )
    if report.k < kanon.k:
        fix = (
            "set `generalize_until_k: true` with ladders for the quasi-identifiers"
            if not kanon.generalize_until_k
            else "give the quasi-identifiers longer ladders"
        )
        raise ValidationFailed(
            f"privacy step: k-anonymity over ({qis}) is k={report.k}, below k={kanon.k}: "
            f"{report.classes_below(kanon.k)} class(es), {report.rows_at_risk(kanon.k)} "
            f"row(s) at risk; smallest classes: {classes}. To fix it, {fix}, or coarsen "
            "them in `generalize:`"
        )
    raise ValidationFailed(
        f"privacy step: l-diversity of {report.sensitive!r} over ({qis}) is l={report.l}, "
        f"below l={kanon.l}; smallest classes: {classes}. Coarsen the quasi-identifiers so "
        "that each class mixes more sensitive values"
    )


def _values(values: Mapping[str, Any]) -> str:
    return "(" + ", ".join(f"{c}={v!r}" for c, v in values.items()) + ")"
