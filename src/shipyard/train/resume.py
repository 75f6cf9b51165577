"""Resuming a search after its driver died: the stored trials seed a new study.

Every finished trial of a search is a child run (``trial_records``) with its parameters, its
fold scores and its CV mean. When a training run ends without finishing (the driver process
was killed, the machine restarted), the next run of the same training (``train_key``) reads
those child runs back (``stored_trials``) and adds them to its new Optuna study as finished
trials (``seed_study``): they count against the trial budget, the sampler learns from them,
and the best of them can win. The sampler's seed moves on by the number of stored trials, so
the resumed search does not propose the first trials again. Only trials whose parameters fit
the current spaces are taken (a changed spec starts afresh); grid searches start afresh.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shipyard.store.entities import RunStatus
from shipyard.train.space import Choice, Param

#: The tag naming the interrupted run a resumed search took its trials from.
RESUMED_FROM = "tuning.resumed_from"

if TYPE_CHECKING:
    from collections.abc import Sequence

    import optuna

    from shipyard.track.workspace import Workspace
    from shipyard.train.spec import TrainSpec
    from shipyard.train.tuning import TrialOutcome


def interrupted_search(workspace: Workspace, train_key: str, current_run_id: str) -> str | None:
    """The latest other run of this training that did not finish, if any.

    Failed, killed, or still marked ``running`` by a driver that died without ending it.
    """
    runs = workspace.search_runs(
        f"tags.train_key = '{train_key}' and status != 'finished'", limit=None
    )
    for run in sorted(runs, key=lambda r: r.start_ms, reverse=True):
        if run.run_id != current_run_id:
            return run.run_id
    return None


def stored_trials(workspace: Workspace, parent_run_id: str) -> list[TrialOutcome]:
    """The finished, complete trials recorded under ``parent_run_id``, by trial number.

    The metric is the one the trials were scored on (their ``cv_<metric>`` and its ``_std``).
    """
    from shipyard.train.tuning import TrialOutcome

    children = []
    seen: set[str] = set()
    parent: str | None = parent_run_id
    while parent is not None and parent not in seen:  # a resumed run's own resumed trials
        seen.add(parent)
        children += workspace.search_runs(f"parent_run_id = '{parent}'", limit=None)
        parent = workspace.get_run(parent).tags.get(RESUMED_FROM)
    outcomes = []
    for child in children:
        if child.status != RunStatus.FINISHED or child.tags.get("kind") != "trial":
            continue
        if child.tags.get("trial_state", "complete") != "complete":
            continue
        metric = next(
            (k[3:] for k in child.metrics if k.startswith("cv_") and f"{k}_std" in child.metrics),
            None,
        )
        if not child.name.startswith("trial-") or metric is None:
            continue
        history = workspace.metric_history(child.run_id, f"fold_{metric}")
        folds = [p.value for p in sorted(history, key=lambda p: p.step)]
        params = {k: v for k, v in child.params.items() if k != "estimator"}
        outcomes.append(
            TrialOutcome(
                int(child.name.removeprefix("trial-")),
                child.params.get("estimator", ""),
                params,
                "complete",
                folds,
                child.metrics.get("latency_us"),
                None if "size_bytes" not in child.metrics else int(child.metrics["size_bytes"]),
                child.metrics.get("duration_s", 0.0),
                child.run_id,
            )
        )
    return sorted({o.number: o for o in outcomes}.values(), key=lambda o: o.number)


def distribution(param: Param) -> optuna.distributions.BaseDistribution:
    """The Optuna distribution ``space.suggest`` samples ``param`` from."""
    import optuna

    if isinstance(param, Choice):
        return optuna.distributions.CategoricalDistribution(list(param.values))
    if param.integer:
        return optuna.distributions.IntDistribution(int(param.low), int(param.high), log=param.log)
    return optuna.distributions.FloatDistribution(param.low, param.high, log=param.log)


def _value(stored: Any, param: Param) -> Any:
    """A stored (text) parameter back in its space's type; ``ValueError`` if it does not fit."""
    if isinstance(param, Choice):
        for value in param.values:
            if str(value) == str(stored) or value == stored:
                return value
        raise ValueError(stored)
    number = float(stored)
    if not param.low <= number <= param.high:
        raise ValueError(stored)
    return int(number) if param.integer else number


def seed_study(
    study: optuna.Study,
    spec: TrainSpec,
    spaces: dict[str, dict[str, Param]],
    previous: Sequence[TrialOutcome],
    objectives: Sequence[str],
) -> list[TrialOutcome]:
    """Add the stored trials that fit the spaces to ``study``; return them, typed."""
    import optuna

    from shipyard.train.tuning import TrialOutcome

    names = [e.name for e in spec.estimators]
    taken = []
    for outcome in previous:
        if outcome.estimator not in names or not outcome.fold_scores:
            continue
        params: dict[str, Any] = {}
        dists: dict[str, optuna.distributions.BaseDistribution] = {}
        if len(names) > 1:
            params["estimator"] = outcome.estimator
            dists["estimator"] = optuna.distributions.CategoricalDistribution(names)
        fixed = next(e.params for e in spec.estimators if e.name == outcome.estimator)
        sampled: dict[str, Any] = {}
        try:
            for key, param in spaces[outcome.estimator].items():
                sampled[key] = _value(outcome.params[key], param)
                params[f"{outcome.estimator}.{key}"] = sampled[key]
                dists[f"{outcome.estimator}.{key}"] = distribution(param)
        except (KeyError, ValueError):
            continue  # the space changed since: this trial is not one of this search's
        typed = TrialOutcome(
            outcome.number, outcome.estimator, {**fixed, **sampled}, "complete",
            list(outcome.fold_scores), outcome.latency_us, outcome.size_bytes,
            outcome.duration_s, outcome.run_id,
        )  # fmt: skip
        values = [typed.mean] + [
            typed.latency_us or 0.0 if o == "latency" else float(typed.size_bytes or 0)
            for o in objectives
        ]
        study.add_trial(
            optuna.trial.create_trial(
                params=params,
                distributions=dists,
                values=values,
                user_attrs={"shipyard_trial": typed.number},
            )
        )
        taken.append(typed)
    return taken
