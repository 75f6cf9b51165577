"""The pipeline's privacy parts: PII tags at ingestion, and the ``privacy`` step as a stage.

**Tags at ingestion.** The validate stage runs ``detect_pii`` on the combined rows (a sample of
them) and writes the validated and quarantined versions with the findings as personal-data
tags (``shipyard.data.datasets``), so their stored profiles keep no values of those columns.
Later versions inherit the tags of the columns they keep.

**The privacy stage.** Cached like the other steps: the key hashes the step's spec (which says
where the key is, never the key), the privacy code, the input version and, when the step
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
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import polars as pl

from shipyard.data.clean import FAILED
from shipyard.data.datasets import find_cached, pii_tags, read_dataset, write_dataset
from shipyard.pipeline.cache import cache_key, code_hash
from shipyard.privacy import detect, generalize, kanon, pseudonym, step, transform
from shipyard.privacy.detect import detect_pii
from shipyard.privacy.pseudonym import load_key
from shipyard.privacy.step import key_fingerprint, run_privacy, treated_tags

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from shipyard.privacy.step import PrivacyOutcome, PrivacyStepSpec
    from shipyard.store.datasets import DatasetVersion
    from shipyard.track.run import ActiveRun
    from shipyard.track.workspace import Workspace

#: The check name suppressed rows carry in quarantine.
KANON_CHECK = "kanon.k"
KANON_ARTIFACT = "kanon.json"


@dataclass(frozen=True)
class PrivacyStageResult:
    """What the stage produced: its version, whether from cache, and the rows it suppressed."""

    version: DatasetVersion
    cached: bool
    suppressed: DatasetVersion | None = None
    seconds: float = 0.0

    @property
    def rows_suppressed(self) -> int:
        """Rows dropped to reach k (kept in the ``suppressed`` quarantine version)."""
        return 0 if self.suppressed is None else self.suppressed.row_count


def ingest_tags(frame: pl.LazyFrame | pl.DataFrame) -> dict[str, str]:
    """Return the PII kind of each column ``detect_pii`` flags in ``frame`` (a sample of it)."""
    return {column: f.kind for column, f in detect_pii(frame).items()}


def run_privacy_stage(
    workspace: Workspace,
    run: ActiveRun,
    *,
    spec: PrivacyStepSpec,
    stage: str,
    name: str,
    current: DatasetVersion,
    project_root: Path,
    notify: Callable[[str, str], None],
) -> PrivacyStageResult:
    """Run (or reuse) one ``privacy`` step on ``current``.

    Args:
        workspace: Where versions and runs go.
        run: The pipeline run (the stage is its child).
        spec: The step.
        stage: The stage's label (``2:privacy``).
        name: The output dataset's name.
        current: The input version.
        project_root: Where a relative ``key_file`` is read from.
        notify: Progress callback (stage, state).

    Raises:
        InvalidSettings: The step pseudonymizes and its key is missing or too short.
        InvalidArgument: A column the step names is missing, or a rule does not fit.
        ValidationFailed: k or l does not hold (see ``shipyard.privacy.step``).
    """
    key = _key(spec, project_root) if spec.pseudonymize else None
    params = spec.model_dump(mode="json")
    key_id = None if key is None else key_fingerprint(key)
    code = code_hash(detect, generalize, kanon, pseudonym, transform, step)
    cache = cache_key(
        "privacy", params, code=code, inputs=[current.dataset_id], extra={"key": key_id}
    )
    cached = find_cached(workspace, cache)
    if cached is not None:
        notify(stage, "cached")
        return PrivacyStageResult(cached, cached=True)
    notify(stage, "start")
    started = time.perf_counter()
    with run.child(name=stage, params={"step": "privacy"}) as child:
        outcome = run_privacy(read_dataset(workspace, current), spec, key)
        tags = treated_tags(spec.treatments, pii_tags(current))
        suppressed = _quarantine(workspace, outcome, name, current, child.run_id, tags)
        version = write_dataset(
            workspace,
            outcome.frame,
            name=name,
            parents=[current],
            cache_key=cache,
            run_id=child.run_id,
            lineage={"step": stage, "params": params},
            pii=tags,
        )
        child.log_metrics({"rows_in": current.row_count, "rows_out": version.row_count})
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
    notify(stage, "done")
    return PrivacyStageResult(version, False, suppressed, time.perf_counter() - started)


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
