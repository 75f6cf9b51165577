"""Which ``clean`` rules the data stage runs, and which the model fits on training rows.

A project that trains splits its rows only inside the ``train`` stage, after every step, so a
statistic ``clean`` fits in the data stage (an imputation mean / median / mode, outlier bounds)
would see the validation and test rows too (issue 16). For such a project, ``plan_cleaning``
moves those rules to ``train.preprocess.clean`` (``shipyard.train.cleaning``), where they are
fitted inside each cross-validation fold and on the training rows at refit and travel with the
model to serving and batch scoring.

What stays in the data stage: row-local cleaning (``coerce``, ``normalize``, ``dedup``,
``impute: {constant: ...}``, ``impute: {ffill_by: ...}``), outliers with ``action: flag``
(it adds a column) or ``quarantine`` (it removes rows, which a model cannot do at serving time;
their bounds are still fitted on the whole batch, see docs/data.md), and every rule on a column
the model does not take as a feature (the target, ``exclude``, the split's group and time
columns, anything outside ``train.features``). Without a ``train:`` section, or when
``train.data`` names another dataset, nothing moves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from shipyard.pipeline.project import CleanStep
from shipyard.train.cleaning_spec import ModelCleaningSpec

if TYPE_CHECKING:
    from shipyard.pipeline.project import ProjectFile, Step
    from shipyard.train.spec import TrainSpec

__all__ = ["CleaningPlan", "plan_cleaning"]

_FITTED = ("mean", "median", "mode")


@dataclass(frozen=True)
class CleaningPlan:
    """The steps as the data stage runs them, and the rules the model fits.

    ``moved[i]`` says, for the step at index ``i``, what left it (for the stage's warning).
    """

    steps: list[Step]
    model: ModelCleaningSpec
    moved: dict[int, str]

    def train_spec(self, train: TrainSpec) -> TrainSpec:
        """``train`` with the moved rules added to ``preprocess.clean`` (the spec's own win)."""
        if self.model.empty:
            return train
        own = train.preprocess.clean or ModelCleaningSpec()
        preprocess = train.preprocess.model_copy(update={"clean": self.model.merged(own)})
        return train.model_copy(update={"preprocess": preprocess})


def plan_cleaning(spec: ProjectFile) -> CleaningPlan:
    """Split every ``clean`` step of ``spec`` between the data stage and the model."""
    train = spec.train
    if train is None or train.data is not None:
        return CleaningPlan(list(spec.steps), ModelCleaningSpec(), {})
    steps: list[Step] = []
    model = ModelCleaningSpec()
    moved: dict[int, str] = {}
    for index, step in enumerate(spec.steps):
        if not isinstance(step, CleanStep):
            steps.append(step)
            continue
        rules = step.clean
        impute = {
            c: r for c, r in rules.impute.items() if isinstance(r, str) and _feature(c, train)
        }
        impute = {c: r for c, r in impute.items() if r in _FITTED}
        outliers = {
            c: r for c, r in rules.outliers.items() if r.action == "clip" and _feature(c, train)
        }
        if impute or outliers:
            kept = rules.model_copy(
                update={
                    "impute": {c: r for c, r in rules.impute.items() if c not in impute},
                    "outliers": {c: r for c, r in rules.outliers.items() if c not in outliers},
                }
            )
            step = CleanStep(clean=kept)
            model = model.merged(ModelCleaningSpec(impute=impute, outliers=outliers))
            listed = [f"impute {c} ({r})" for c, r in impute.items()]
            listed += [f"outliers {c} ({r.method}, clip)" for c, r in outliers.items()]
            moved[index] = (
                f"{', '.join(listed)}: fitted on training rows inside the model "
                "(train.preprocess.clean), not on this batch, which holds the test rows too"
            )
        steps.append(step)
    return CleaningPlan(steps, model, moved)


def _feature(column: str, train: TrainSpec) -> bool:
    """Whether the model may take ``column`` as a feature."""
    if column == train.target or column in train.exclude:
        return False
    if column in (train.split.group_column, train.split.time_column):
        return False
    return train.features is None or column in train.features
