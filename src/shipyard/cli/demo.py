"""``shipyard demo``: a real tracked job, end to end, on the embedded workspace.

First a tracking demo: it trains a logistic
regression by SGD on scikit-learn's bundled breast-cancer data with 5-fold cross-validation,
for three regularization strengths: one parent run per strength, one child run per fold,
per-epoch metrics, a Parquet artifact of fold scores and a note. Then it searches and compares
the runs it made, as a user would. Then (``--lifecycle``, the default) the lifecycle demo of
``lifecycle_demo``: raw CSV → validated dataset → tuned model → registry and gate → HTTP.
"""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import Progress

from shipyard.cli import runs as runs_cli
from shipyard.cli.context import console, open_workspace
from shipyard.core.errors import InvalidArgument

if TYPE_CHECKING:
    import numpy as np

    from shipyard.track.run import ActiveRun

EXPERIMENT = "demo-breast-cancer"


def demo(
    ctx: typer.Context,
    epochs: Annotated[int, typer.Option(min=1, max=500, help="SGD epochs per fold.")] = 30,
    folds: Annotated[int, typer.Option(min=2, max=20, help="Cross-validation folds.")] = 5,
    lifecycle: Annotated[
        bool,
        typer.Option(
            "--lifecycle/--no-lifecycle",
            help="After the tracking demo, run data → training → registry → serving.",
        ),
    ] = True,
) -> None:
    """Track a cross-validated job, then carry a model from raw data to an HTTP endpoint."""
    import polars as pl

    try:
        from sklearn.datasets import load_breast_cancer
        from sklearn.model_selection import StratifiedKFold
    except ImportError as e:
        raise InvalidArgument(
            "the demo needs scikit-learn: pip install 'shipyard[ml]' (make demo does this)"
        ) from e

    features, target = load_breast_cancer(return_X_y=True)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=7)
    splits = list(splitter.split(features, target))
    alphas = (1e-4, 1e-3, 1e-2)
    parent_ids = []
    with open_workspace(ctx) as workspace, Progress(console=console) as progress:
        task = progress.add_task("training", total=len(alphas) * folds)
        for alpha in alphas:
            params = {"model": "sgd-logistic", "alpha": alpha, "epochs": epochs, "folds": folds}
            with workspace.start_run(
                name=f"sgd-alpha-{alpha:g}",
                experiment=EXPERIMENT,
                params=params,
                tags={"dataset": "sklearn.breast_cancer", "source": "shipyard demo"},
            ) as parent:
                scores = []
                for fold, (train_idx, valid_idx) in enumerate(splits):
                    with parent.child(name=f"fold-{fold}", params={"fold": fold}) as child:
                        scores.append(
                            _train_fold(
                                child, features, target, train_idx, valid_idx, alpha, epochs
                            )
                        )
                    progress.advance(task)
                parent.log_metrics(
                    {
                        "auc": statistics.fmean(s["auc"] for s in scores),
                        "auc_std": statistics.stdev(s["auc"] for s in scores),
                        "accuracy": statistics.fmean(s["accuracy"] for s in scores),
                    }
                )
                parent.log_artifact(pl.DataFrame(scores), name="fold_scores.parquet")
                parent.add_note(f"{folds}-fold CV of SGD logistic regression, alpha={alpha:g}.")
                parent_ids.append(parent.run_id)
        best = workspace.search_runs(
            f"experiment = '{EXPERIMENT}' and parent_run_id is null and metrics.auc > 0.9",
            order_by=["metrics.auc desc"],
            limit=1,
        )
    console.print()
    ctx.invoke(
        runs_cli.list_,
        ctx=ctx,
        experiment=[EXPERIMENT],
        where="parent_run_id is null",
        order_by=["metrics.auc desc"],
        limit=10,
        as_json=False,
    )
    ctx.invoke(runs_cli.compare, ctx=ctx, run_ids=parent_ids)
    if best:
        console.print(
            f"best run: [bold]{best[0].name}[/] ({best[0].run_id[:8]}), "
            f"AUC {best[0].metrics['auc']:.4f}"
        )
    console.print(
        "explore: [bold]shipyard runs list[/], "
        f"[bold]shipyard runs show {parent_ids[0][:8]}[/], "
        "[bold]shipyard experiments list[/]"
    )
    if lifecycle:
        from shipyard.cli.lifecycle_demo import run_lifecycle
        from shipyard.core.settings import load_settings

        state = ctx.obj
        project = state.project_dir if state is not None and state.project_dir else None
        run_lifecycle((project or load_settings().project_dir) / ".shipyard")


def _train_fold(
    run: ActiveRun,
    features: np.ndarray,
    target: np.ndarray,
    train_idx: np.ndarray,
    valid_idx: np.ndarray,
    alpha: float,
    epochs: int,
) -> dict[str, float]:
    import numpy as np
    from sklearn.linear_model import SGDClassifier
    from sklearn.metrics import accuracy_score, log_loss, roc_auc_score
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(features[train_idx])
    x_train, x_valid = scaler.transform(features[train_idx]), scaler.transform(features[valid_idx])
    y_train, y_valid = target[train_idx], target[valid_idx]
    model = SGDClassifier(loss="log_loss", alpha=alpha, random_state=0)
    classes = np.unique(target)
    for epoch in range(epochs):
        model.partial_fit(x_train, y_train, classes=classes)
        run.log_metrics(
            {
                "train_loss": log_loss(y_train, model.predict_proba(x_train)),
                "valid_loss": log_loss(y_valid, model.predict_proba(x_valid)),
            },
            step=epoch,
        )
    probabilities = model.predict_proba(x_valid)[:, 1]
    result = {
        "fold": float(run.name.rsplit("-", 1)[-1]),
        "auc": float(roc_auc_score(y_valid, probabilities)),
        "accuracy": float(accuracy_score(y_valid, model.predict(x_valid))),
    }
    run.log_metrics({"auc": result["auc"], "accuracy": result["accuracy"]})
    return result
