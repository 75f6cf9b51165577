"""A project's learning curve, as a tracked run: which data, which candidate, what it showed.

``shipyard.train.learning_curve`` computes a curve from a spec, a frame and a candidate; only
the pipeline layer knows the project's pieces that choose them:

- the data is what the next ``shipyard run`` would train on: the newest version of the
  dataset ``train.data`` names, else the final dataset of the project's newest finished
  pipeline run (validated, then cleaned and featured by ``steps:``);
- the candidate is the production model's estimator with its tuned hyperparameters (from its
  bundle), else the spec's first estimator with its fixed params and library defaults;
- prices are those of the active instance (``cost`` settings).

The curve is recorded as a run in experiment ``<project>-curves`` with metrics per fraction
(``f0.5/roc_auc_mean``, ``f0.5/cpu_seconds``, ...), the whole curve as ``curve.json`` and the
figure as ``learning_curve.png``, so curves of different runs are shared and comparable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shipyard.core.errors import InvalidArgument, NotFound
from shipyard.cost.catalog import active_instance, catalog_for
from shipyard.data.datasets import get_dataset, read_dataset
from shipyard.pipeline.monitoring import DEFAULT_ALIAS
from shipyard.registry.registry import ModelRegistry
from shipyard.store.datasets import DatasetStore
from shipyard.train.fitting import Candidate
from shipyard.train.learning_curve import DEFAULT_FRACTIONS, check_fractions, learning_curve
from shipyard.train.learning_curve_plot import learning_curve_chart

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from shipyard.cost.catalog import ActiveInstance
    from shipyard.pipeline.project import Project
    from shipyard.track.run import ActiveRun
    from shipyard.track.workspace import Workspace
    from shipyard.train.learning_curve import LearningCurve
    from shipyard.train.spec import TrainSpec

PLOT_ARTIFACT = "learning_curve.png"


@dataclass(frozen=True)
class CurveOutcome:
    """A recorded learning curve and where it came from."""

    run_id: str
    dataset_id: str
    source: str
    """Where the candidate came from: ``cancer:3 (production)`` or ``spec: logistic``."""
    curve: LearningCurve
    active: ActiveInstance
    currency: str
    plot: Path

    def to_dict(self) -> dict[str, Any]:
        """Plain values for ``--json``."""
        return {
            "run_id": self.run_id,
            "dataset": self.dataset_id,
            "candidate_source": self.source,
            "instance": self.active.instance.name,
            "purchase": self.active.purchase,
            "hourly": self.active.hourly,
            "currency": self.currency,
            "plot": str(self.plot),
            **self.curve.to_dict(),
        }


def project_curve(
    workspace: Workspace,
    project: Project,
    *,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    repeats: int = 3,
    dataset: str | None = None,
    plot: Path | None = None,
) -> CurveOutcome:
    """Compute the project's learning curve and record it as a run.

    Args:
        workspace: The project's workspace.
        project: The loaded project; its ``train:`` section says what to learn and how.
        fractions: Strictly increasing shares of the training rows, each in ``(0, 1]``.
        repeats: Subsets drawn per share.
        dataset: A dataset version id (or name: its newest version) instead of the default.
        plot: Where to write the PNG (default ``.shipyard/reports/curve-<run>.png``).

    Raises:
        InvalidArgument: The project has no ``train:`` section, or bad fractions or repeats.
        NotFound: No dataset to learn from yet (run the pipeline first).
        InvalidData: The data cannot support the spec or the smallest share.
    """
    spec = project.spec.train
    if spec is None:
        raise InvalidArgument(
            f"project {project.spec.name!r} has no train: section in shipyard.yaml, so there "
            "is nothing to refit; add one (at least `train: {target: COLUMN}`)"
        )
    shares = check_fractions(fractions)
    if plot is not None and plot.is_dir():
        raise InvalidArgument(f"--plot {plot} is a folder; give a file name such as curve.png")
    version = get_dataset(workspace, _dataset_ref(workspace, project, spec, dataset))
    candidate, source = _candidate(workspace, spec)
    frame = read_dataset(workspace, version).collect()
    catalog = catalog_for(workspace.settings)
    active = active_instance(workspace.settings, catalog)
    name = project.spec.name
    with workspace.start_run(
        name="learning-curve",
        experiment=f"{name}-curves",
        tags={"kind": "learning_curve", "dataset": version.dataset_id},
    ) as run:
        run.log_params(
            {
                "estimator": candidate.estimator,
                "candidate_source": source,
                "fractions": ",".join(f"{f:g}" for f in shares),
                "repeats": repeats,
                "seed": spec.seed,
                "dataset": version.dataset_id,
                "spec_hash": spec.fingerprint()[:16],
                "instance": active.instance.name,
                "purchase": active.purchase,
            }
        )
        curve = learning_curve(
            spec, frame, candidate, fractions=shares, repeats=repeats, instance=active
        )
        run.log_params({"metric": curve.metric, "task": curve.task})
        _log_curve(run, curve)
        path = plot or workspace.settings.state_dir / "reports" / f"curve-{run.run_id[:12]}.png"
        chart = learning_curve_chart(curve, currency=catalog.currency, path=path)
        run.log_artifact(chart, name=PLOT_ARTIFACT)
        document = {"dataset": version.dataset_id, "candidate_source": source, **curve.to_dict()}
        run.log_artifact(json.dumps(document, indent=2, default=str).encode(), name="curve.json")
        run.set_tag("summary", curve.summary()[:1000])
    return CurveOutcome(
        run.run_id, version.dataset_id, source, curve, active, catalog.currency, chart
    )


def _dataset_ref(workspace: Workspace, project: Project, spec: TrainSpec, named: str | None) -> str:
    """The dataset version the next training would use (see the module docstring)."""
    wanted = named or spec.data
    if wanted is not None:
        versions = DatasetStore(workspace.store).list_versions(wanted, kind="data", limit=1)
        return versions[0].dataset_id if versions else wanted
    runs = workspace.search_runs(
        "tags.kind = 'pipeline' and status = 'finished'",
        experiments=[f"{project.spec.name}-pipeline"],
        order_by=["start_time desc"],
        limit=20,
    )
    for run in runs:
        if final := run.tags.get("final_dataset"):
            return final
    raise NotFound(
        f"project {project.spec.name!r} has no dataset yet; run `shipyard run` first, "
        "or name one with --dataset"
    )


def _candidate(workspace: Workspace, spec: TrainSpec) -> tuple[Candidate, str]:
    """The production model's estimator and tuned params, else the spec's first estimator."""
    reg = spec.registration
    if reg is not None:
        alias = reg.promote_to or DEFAULT_ALIAS
        registry = ModelRegistry.for_workspace(workspace)
        try:
            version = registry.get(f"{reg.model}@{alias}")
        except NotFound:
            version = None
        if version is not None:
            metrics = registry.load(version).manifest.metrics
            estimator, params = metrics.get("estimator"), metrics.get("params")
            if isinstance(estimator, str) and isinstance(params, dict):
                return Candidate(estimator, dict(params)), f"{version.ref} ({alias})"
    first = spec.estimators[0]
    return Candidate(first.name, dict(first.params)), f"spec: {first.name}"


def _log_curve(run: ActiveRun, curve: LearningCurve) -> None:
    """Metrics per fraction (``f0.25/...``) plus the mean score as a series stepped by rows."""
    metric = curve.metric
    for point in curve.points:
        key = f"f{point.fraction:g}"
        values: dict[str, float] = {
            f"{key}/rows": float(point.rows),
            f"{key}/cpu_seconds": point.mean_cpu_seconds,
        }
        if point.mean is not None:
            values[f"{key}/{metric}_mean"] = point.mean
            values[f"{key}/{metric}_std"] = point.std or 0.0
        if point.cost_usd is not None:
            values[f"{key}/cost_usd"] = float(point.cost_usd)
        run.log_metrics(values)
        if point.mean is not None:
            run.log_metric(f"{metric}_mean", point.mean, step=point.rows)
    for gain in curve.gains():
        if gain.per_doubling is not None:
            run.log_metric(f"f{gain.to_fraction:g}/gain_per_doubling", gain.per_doubling)
