"""The pipeline's privacy parts: PII tags at ingestion, and the ``privacy`` step as a stage.

**Tags at ingestion.** The validate stage runs ``detect_pii`` (``privacy.detect.ingest_tags``,
kept there so that a data-only run loads no privacy step) on the combined rows (a sample of
them) and writes the validated and quarantined versions with the findings as personal-data
tags (``shipyard.data.datasets``), so their stored profiles keep no values of those columns.
Later versions inherit the tags of the columns they keep.

**The privacy stage.** Cached like the other steps (``pipeline.stage``): the key hashes the
step's spec (which says where the key is, never the key), the code this module imports (the
``privacy`` package), the input version and, when the step
pseudonymizes, ``key_fingerprint(key)``, so changing the key reruns the step and the key
itself is stored nowhere. The child run logs the k-anonymity metrics and ``kanon.json``
(smallest classes, class sizes, the generalizations applied); rows suppressed to reach k go
to a quarantine version ``<project>.<i>.privacy.suppressed`` with ``_failed_checks =
["kanon.k"]``, so the stage's rows are conserved. The output version tags pseudonymized
columns ``pseudonymized`` and masked ones ``masked`` instead of what they held.

A relative ``key_file`` is read relative to the project folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl

from shipyard.data.clean import FAILED
from shipyard.data.datasets import pii_tags, read_dataset, write_dataset
from shipyard.pipeline.stage import DatasetResult, DatasetStage
from shipyard.privacy.pseudonym import load_key
from shipyard.privacy.step import key_fingerprint, run_privacy, treated_tags

if TYPE_CHECKING:
    from pathlib import Path

    from shipyard.pipeline.stage import StageRun, StepPlace
    from shipyard.privacy.step import PrivacyOutcome, PrivacyStepSpec
    from shipyard.store.datasets import DatasetVersion
    from shipyard.track.workspace import Workspace

#: The check name suppressed rows carry in quarantine.
KANON_CHECK = "kanon.k"
KANON_ARTIFACT = "kanon.json"
KIND = "privacy"


@dataclass(frozen=True)
class PrivacyStage(DatasetStage):
    """One ``privacy`` step on ``source``, executed by ``pipeline.stage.execute``.

    ``key_id`` is ``key_fingerprint(key)`` when the step pseudonymizes: part of ``params``,
    so a new key reruns the step while the key itself is stored nowhere.
    """

    spec: PrivacyStepSpec
    key: bytes | None
    label: str
    output: str
    source: DatasetVersion
    kind: str = KIND

    @classmethod
    def at(cls, spec: PrivacyStepSpec, place: StepPlace) -> PrivacyStage:
        """Return the stage for a ``privacy`` entry at ``place``.

        Raises:
            InvalidSettings: The step pseudonymizes and its key is missing or too short.
        """
        key = _key(spec, place.root) if spec.pseudonymize else None
        return cls(spec, key, place.label(KIND), place.output(KIND), place.current)

    @property
    def params(self) -> Any:
        """The step's spec (where the key is, never the key) and the key's fingerprint."""
        key_id = None if self.key is None else key_fingerprint(self.key)
        return {"spec": self.spec.model_dump(mode="json"), "key": key_id}

    @property
    def inputs(self) -> list[str]:
        """The version it treats."""
        return [self.source.dataset_id]

    def run(self, context: StageRun) -> DatasetResult:
        """Treat the rows; quarantine the suppressed ones; log the k-anonymity figures.

        Raises:
            InvalidArgument: A column the step names is missing, or a rule does not fit.
            ValidationFailed: k or l does not hold (see ``shipyard.privacy.step``).
        """
        child = context.run
        outcome = run_privacy(read_dataset(context.workspace, self.source), self.spec, self.key)
        tags = treated_tags(self.spec.treatments, pii_tags(self.source))
        suppressed = _quarantine(
            context.workspace, outcome, self.output, self.source, child.run_id, tags
        )
        lineage = {"step": self.label, "params": self.spec.model_dump(mode="json")}
        version = self.write_output(
            context, outcome.frame, name=self.output, lineage=lineage, pii=tags
        )
        if outcome.report is not None:
            report = outcome.report
            metrics = {"kanon_k": report.k, "kanon_classes": report.classes}
            metrics["kanon_rows_suppressed"] = 0 if suppressed is None else suppressed.row_count
            if report.l is not None:
                metrics["kanon_l"] = report.l
            child.log_metrics(metrics)
            child.log_artifact(
                json.dumps(outcome.summary(), default=str).encode(), name=KANON_ARTIFACT
            )
        return DatasetResult(
            version,
            self.source.row_count,
            version.row_count,
            0 if suppressed is None else suppressed.row_count,
            quarantine=() if suppressed is None else (suppressed,),
        )


def _key(spec: PrivacyStepSpec, project_root: Path) -> bytes:
    key_file = spec.key_file
    if key_file is not None and not key_file.expanduser().is_absolute():
        key_file = project_root / key_file
    return load_key(key_env=spec.key_env, key_file=key_file)


def _quarantine(
    workspace: Workspace,
    outcome: PrivacyOutcome,
    name: str,
    current: DatasetVersion,
    run_id: str,
    tags: dict[str, str],
) -> DatasetVersion | None:
    """Keep the rows suppressed to reach k as a quarantine version, and return it."""
    rows = outcome.suppressed
    if rows is None or rows.height == 0:
        return None
    return write_dataset(
        workspace,
        rows.with_columns(pl.lit([KANON_CHECK], dtype=pl.List(pl.String)).alias(FAILED)),
        name=f"{name}.suppressed",
        kind="quarantine",
        parents=[current],
        run_id=run_id,
        lineage={"step": "privacy", "check": KANON_CHECK},
        pii=tags,
    )
