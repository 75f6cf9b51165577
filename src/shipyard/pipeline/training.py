"""The ``train:`` stage: dataset version in, registered (and maybe promoted) bundle out.

Training is cached like every other stage (``pipeline.stage``): the key is the dataset
version, the spec's hash and the code this module imports at run time, with the versions of the
libraries it uses. Re-running with nothing changed finds the earlier run by that key (its
``train_key`` tag) and reuses its bundle, so ``shipyard run`` twice does the work once.

Registration and promotion act as the identity that runs the pipeline, through the registry,
which checks it: a data scientist's run registers its model, but its ``promote_to`` is refused
(audited, outcome ``denied``) and reported in ``TrainingOutcome.promotion_denied`` while the
run itself completes; the model stays registered for an ML engineer to promote.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from shipyard.core.errors import PermissionDenied
from shipyard.core.executor import executor_for
from shipyard.cost.budget import trial_budget
from shipyard.data.datasets import get_dataset, read_dataset, write_dataset
from shipyard.pipeline.stage import StageContext, execute
from shipyard.registry.packaging import write_training_bundle
from shipyard.registry.registry import ModelRegistry
from shipyard.track.environment import code_version
from shipyard.train import cleaning
from shipyard.train.resume import RESUMED_FROM, interrupted_search, stored_trials
from shipyard.train.trainer import train

if TYPE_CHECKING:
    from collections.abc import Callable

    from shipyard.cost.budget import BudgetSection
    from shipyard.pipeline.stage import StageRun
    from shipyard.registry.verdict import PromotionResult
    from shipyard.security.identities import Identity
    from shipyard.store.datasets import DatasetVersion
    from shipyard.store.registry import ModelVersion
    from shipyard.track.run import ActiveRun
    from shipyard.track.workspace import Workspace
    from shipyard.train.spec import TrainSpec
    from shipyard.train.trainer import TrainResult
    from shipyard.train.tuning import TrialOutcome

BUNDLE_ARTIFACT = "model.shipyard"


@dataclass(frozen=True)
class TrainingOutcome:
    """What the training stage produced."""

    run_id: str
    bundle_sha256: str
    test_dataset: str
    cached: bool
    result: TrainResult | None
    version: ModelVersion | None = None
    promotion: PromotionResult | None = None
    promotion_denied: str | None = None


def training_key(dataset_id: str, key: str) -> str:
    """Return the ``train_key`` tag of a training run: the data version's prefix, then the key.

    The prefix lets erasure find the runs trained on a version (``privacy.references``).
    """
    return f"{dataset_id[:16]}-{key[:32]}"


@dataclass(frozen=True)
class TrainStage:
    """The ``train:`` section as a stage (``pipeline.stage``).

    Its key covers the data version, the spec's hash and every module this one imports at run
    time (the whole trainer: splits, imbalance, metrics, estimators, ...) with the versions of
    the libraries they use.

    An earlier run is found by its ``train_key`` tag and must have finished with a bundle.
    ``reuse=False`` always trains.
    """

    spec: TrainSpec
    dataset: DatasetVersion
    actor: Identity
    project: str = "project"
    project_dir: Path | None = None
    on_trial: Callable[[TrialOutcome], None] | None = None
    budget: BudgetSection | None = None
    reuse: bool = True
    kind: str = "train"
    label: str = "train"

    @property
    def params(self) -> str:
        """The spec's hash."""
        return self.spec.fingerprint()

    @property
    def inputs(self) -> list[str]:
        """The version it trains on."""
        return [self.dataset.dataset_id]

    def find(self, workspace: Workspace, key: str) -> TrainingOutcome | None:
        """Return the newest finished run trained under ``key`` (and its bundle), if any."""
        if not self.reuse:
            return None
        found = workspace.search_runs(
            f"tags.train_key = '{training_key(self.dataset.dataset_id, key)}' "
            "and status = 'finished'",
            order_by=["start_time desc"],
            limit=1,
        )
        if not found:
            return None
        run = found[0]
        sha, test = run.tags.get("bundle_sha256"), run.tags.get("test_dataset")
        if not sha or not test:
            return None
        return TrainingOutcome(run.run_id, sha, test, True, None)

    def run(self, context: StageRun) -> TrainingOutcome:
        """Train, write the test split, bundle, register and promote, inside ``context.run``.

        Raises:
            PermissionDenied: ``actor`` may not register models (when the spec registers one).
        """
        workspace, run, spec, version = context.workspace, context.run, self.spec, self.dataset
        key = training_key(version.dataset_id, context.key)
        run.set_tags({"kind": "train", "train_key": key})
        frame = read_dataset(workspace, version).collect()
        # After the cache check: a reused model spends nothing, so a spent budget cannot stop it.
        budget = self.budget
        cost_budget = (
            trial_budget(
                workspace.store,
                budget,
                run.experiment,
                settings=workspace.settings,
                clock=workspace.clock,
            )
            if budget
            else None
        )
        # A search whose driver died resumes from its stored trials (train.resume).
        previous: list[TrialOutcome] = []
        interrupted = interrupted_search(workspace, key, run.run_id)
        if interrupted is not None and (previous := stored_trials(workspace, interrupted)):
            run.set_tag(RESUMED_FROM, interrupted)
            run.add_note(f"tuning resumed {len(previous)} trial(s) of run {interrupted}")
        executor = executor_for(workspace.settings.executor)
        try:
            result = train(
                spec,
                frame,
                run=run,
                on_trial=self.on_trial,
                cost_budget=cost_budget,
                executor=executor,
                previous=previous,
            )
        finally:
            executor.close()
        if fitted := cleaning.fitted_cleaning(result.model):  # clean's values, training rows
            run.log_artifact(json.dumps(fitted, sort_keys=True).encode(), name="cleaning.json")
        test = write_dataset(
            workspace,
            result.test_frame if result.test_frame is not None else frame.head(0),
            name=f"{version.name}.test",
            parents=[version],
            run_id=run.run_id,
            lineage={"step": "split", "seed": spec.seed, "split": spec.split.model_dump()},
        )
        name = spec.registration.model if spec.registration else None
        commit = code_version(str(self.project_dir or Path.cwd())).commit
        with tempfile.TemporaryDirectory(prefix="shipyard-bundle-") as tmp:
            path = Path(tmp) / BUNDLE_ARTIFACT
            sha = write_training_bundle(
                result,
                path,
                name=name,
                created_at=dt.datetime.fromtimestamp(workspace.clock.now_ms() / 1000, tz=dt.UTC),
                run_id=run.run_id,
                dataset_ids={"source": version.dataset_id, "test": test.dataset_id},
                code_version=commit,
            )
            run.log_artifact(path, name=BUNDLE_ARTIFACT)
            run.set_tags({"bundle_sha256": sha, "test_dataset": test.dataset_id})
            registered, promotion, denied = _register(workspace, spec, path, run.run_id, self.actor)
        return TrainingOutcome(
            run.run_id, sha, test.dataset_id, False, result, registered, promotion, denied
        )


def run_training(
    workspace: Workspace,
    spec: TrainSpec,
    dataset: str,
    *,
    actor: Identity,
    project: str = "project",
    project_dir: Path | None = None,
    parent: ActiveRun | None = None,
    on_trial: Callable[[TrialOutcome], None] | None = None,
    reuse: bool = True,
    budget: BudgetSection | None = None,
) -> TrainingOutcome:
    """Train on dataset version ``dataset``; bundle, register and promote as the spec says.

    A refused promotion is not an error: the gate's verdict is in ``promotion`` and the alias
    history, and the alias stays where it was. Neither is a promotion ``actor`` may not make:
    the denial is audited and its message is in ``promotion_denied``. Without ``parent`` the
    run goes to experiment ``<project>-train``.

    Raises:
        PermissionDenied: ``actor`` may not register models (when the spec registers one).
    """
    stage = TrainStage(
        spec,
        get_dataset(workspace, dataset),
        actor,
        project,
        project_dir,
        on_trial,
        budget,
        reuse,
    )
    context = StageContext(
        workspace, parent, lambda _label, _state: None, experiment=f"{project}-train"
    )
    return execute(stage, context).value


def _register(
    workspace: Workspace, spec: TrainSpec, bundle: Path, run_id: str, actor: Identity
) -> tuple[ModelVersion | None, PromotionResult | None, str | None]:
    if spec.registration is None:
        return None, None, None
    registry = ModelRegistry.for_workspace(workspace)
    reg = spec.registration
    version = registry.register(
        reg.model, bundle, actor=actor, run_id=run_id, idempotency_key=f"run:{run_id}"
    )
    if reg.promote_to is None:
        return version, None, None
    try:
        promotion = registry.promote(
            reg.model, version.version, actor=actor, alias=reg.promote_to, margin=reg.margin
        )
    except PermissionDenied as e:  # audited by the registry; the trained model stays
        return version, None, e.message
    return version, promotion, None
