"""``shipyard cost``: what runs, models, predictions and storage cost; advice; right-sizing.

Prices come from the catalog (``shipyard.cost.catalog``: shipped example prices, merged with
``<project>/prices.yaml``); the instance and purchase option from the ``cost`` settings. Every
table ends with the rule and prices it used, so a figure can be checked by hand.
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from shipyard.cli import cost_curve
from shipyard.cli.access import TOKEN_ENV
from shipyard.cli.context import console, open_workspace
from shipyard.cli.options import not_nan
from shipyard.cli.render import write_json
from shipyard.core.errors import InvalidArgument, NotFound, PermissionDenied

if TYPE_CHECKING:
    from shipyard.cost.catalog import ActiveInstance, PriceCatalog
    from shipyard.store.entities import Run
    from shipyard.track.workspace import Workspace

app = typer.Typer(
    help="Cost: spend by project, experiment, model or day; advice; right-sizing.",
    no_args_is_help=True,
)

app.command("curve")(cost_curve.curve)

GROUPINGS = ("project", "experiment", "model", "day")


def _money(value: Decimal | None, places: int = 6) -> str:
    if value is None:
        return "-"
    return (
        f"{value:.{places}f}" if abs(value) >= Decimal("0.000001") or value == 0 else f"{value:.3e}"
    )


def _pricing(workspace: Workspace) -> tuple[PriceCatalog, ActiveInstance]:
    from shipyard.cost.catalog import active_instance, catalog_for

    catalog = catalog_for(workspace.settings)
    return catalog, active_instance(workspace.settings, catalog)


def _footer(catalog: PriceCatalog, active: ActiveInstance, rule: str) -> str:
    i = active.instance
    return (
        f"rule {rule} on {i.name} ({i.vcpus} vCPU) {active.purchase} "
        f"{active.hourly} {catalog.currency}/h; {catalog.label()}"
    )


def _check_rule(rule: str) -> str:
    from shipyard.cost.attribution import RULES

    if rule not in RULES:
        raise InvalidArgument(f"--rule must be one of {', '.join(RULES)}, not {rule!r}")
    return rule


@app.command()
def report(
    ctx: typer.Context,
    by: Annotated[
        str, typer.Option(help="Group by project, experiment, model or day.")
    ] = "experiment",
    rule: Annotated[str, typer.Option(help="cpu_share or whole_instance.")] = "cpu_share",
    server: Annotated[
        str | None,
        typer.Option(help="A server's base URL: add cost per 1,000 predictions per version."),
    ] = None,
    plot: Annotated[
        Path | None, typer.Option(help="PNG path (default .shipyard/reports/cost-<by>.png).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Spend on runs by group, storage per month, and (with --server) serving per 1,000."""
    from shipyard.cost.attribution import group_costs, storage_monthly_cost
    from shipyard.cost.meters import storage_usage
    from shipyard.cost.plots import spend_chart

    if by not in GROUPINGS:
        raise InvalidArgument(f"--by must be one of {', '.join(GROUPINGS)}, not {by!r}")
    _check_rule(rule)
    with open_workspace(ctx) as workspace:
        catalog, active = _pricing(workspace)
        runs = workspace.search_runs(limit=None)
        if by == "model":
            costs = _model_costs(workspace, runs, active, rule)
        else:
            costs = {k: v.usd for k, v in group_costs(runs, active, by, rule).items()}  # type: ignore[arg-type]
        blobs = storage_usage(workspace.store)
        tiers: dict[str, int] = {}
        for blob in blobs:
            tiers[blob.tier] = tiers.get(blob.tier, 0) + blob.size_bytes
        storage = {t: (n, storage_monthly_cost(n, t, catalog)) for t, n in sorted(tiers.items())}
        serving = _serving(server, active) if server else []
        path = plot or workspace.settings.state_dir / "reports" / f"cost-{by}.png"
        chart = spend_chart(
            costs, title=f"Compute cost by {by} ({rule})", currency=catalog.currency, path=path
        )
    footer = _footer(catalog, active, rule)
    if as_json:
        write_json(
            {
                "by": by,
                "rule": rule,
                "currency": catalog.currency,
                "instance": active.instance.name,
                "purchase": active.purchase,
                "hourly": active.hourly,
                "costs": costs,
                "storage_per_month": {t: {"bytes": n, "cost": c} for t, (n, c) in storage.items()},
                "serving": serving,
                "plot": str(chart),
                "prices": catalog.label(),
            }
        )
        return
    table = Table(title=f"Compute cost by {by}")
    table.add_column(by)
    table.add_column(catalog.currency, justify="right")
    for name, usd in costs.items():
        table.add_row(escape(name), _money(usd))
    table.add_row("[b]total[/b]", _money(sum(costs.values(), Decimal(0))))
    console.print(table)
    if storage:
        store_table = Table(title="Storage per month")
        for column in ("tier", "bytes", f"{catalog.currency}/month"):
            store_table.add_column(column, justify="right" if column != "tier" else "left")
        for tier, (size, usd) in storage.items():
            store_table.add_row(tier, f"{size:,}", _money(usd))
        console.print(store_table)
    if serving:
        serve_table = Table(title="Serving (from the server's counters)")
        for column in ("model", "version", "variant", "predictions", "cpu s", "per 1,000"):
            serve_table.add_column(column)
        for row in serving:
            serve_table.add_row(
                escape(row["model"]),
                str(row["version"]),
                escape(row["variant"]),
                f"{row['predictions']:,}",
                f"{row['cpu_seconds']:.3f}",
                _money(row["per_thousand"], 9),
            )
        console.print(serve_table)
    console.print(escape(footer), highlight=False)
    console.print(f"plot: {escape(str(chart))}", highlight=False)


def _model_costs(
    workspace: Workspace, runs: list[Run], active: ActiveInstance, rule: str
) -> dict[str, Decimal]:
    from shipyard.cost.attribution import lineage_runs, total_cost
    from shipyard.store.registry import RegistryStore

    registry = RegistryStore(workspace.store)
    costs = {}
    for model in registry.list_models():
        for version in registry.list_versions(str(model["name"])):
            lineage = lineage_runs(version.run_id, runs)
            costs[version.ref] = total_cost(lineage, active, rule).usd
    return costs


def _serving(server: str, active: ActiveInstance) -> list[dict[str, Any]]:
    import httpx

    from shipyard.cost.attribution import cost_per_thousand_predictions
    from shipyard.cost.meters import parse_serving_meters

    # /metrics needs a token like every route but the health probes: send the one the rest of
    # the CLI acts with, and say which to set when the server refuses.
    token = os.environ.get(TOKEN_ENV, "").strip()
    headers = {"authorization": f"Bearer {token}"} if token else {}
    try:
        answer = httpx.get(f"{server.rstrip('/')}/metrics", timeout=10.0, headers=headers)
    except httpx.HTTPError as e:
        raise InvalidArgument(f"could not read {server}/metrics: {e}") from e
    if answer.status_code in (401, 403):
        hint = "was refused" if token else f"needs a token: set ${TOKEN_ENV}"
        raise PermissionDenied(
            f"{server}/metrics answered {answer.status_code}: the server {hint} "
            "(a token of a user with serve.metrics, viewer or above)"
        )
    if answer.status_code != 200:
        raise InvalidArgument(f"could not read {server}/metrics: HTTP {answer.status_code}")
    return [
        {
            "model": m.model,
            "version": m.version,
            "variant": m.variant,
            "requests": m.requests,
            "predictions": m.predictions,
            "cpu_seconds": m.cpu_seconds,
            "per_thousand": cost_per_thousand_predictions(m.cpu_seconds, m.predictions, active),
        }
        for m in parse_serving_meters(answer.text)
    ]


@app.command()
def advise(
    ctx: typer.Context,
    experiment: Annotated[str, typer.Argument(help="The experiment whose tuning to weigh.")],
    tolerance: Annotated[
        float,
        typer.Option(
            min=0.0, callback=not_nan, help="Accept a score this far (absolute) below the best."
        ),
    ] = 0.005,
    basis: Annotated[
        str, typer.Option(help="Rank by serving (per 1,000 predictions) or training cost.")
    ] = "serving",
    run: Annotated[
        str | None, typer.Option(help="The training run (default: the experiment's latest).")
    ] = None,
    plot: Annotated[Path | None, typer.Option(help="PNG path for the trade-off figure.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Name the cheapest candidate within --tolerance of the best, and the price of the rest."""
    from shipyard.cost.plots import tradeoff_chart
    from shipyard.cost.tradeoffs import advise as choose
    from shipyard.cost.tradeoffs import best_so_far, candidates, pareto_front
    from shipyard.train.metrics import greater_is_better

    if basis not in ("serving", "training"):
        raise InvalidArgument(f"--basis must be serving or training, not {basis!r}")
    with open_workspace(ctx) as workspace:
        catalog, active = _pricing(workspace)
        parent = _training_run(workspace, experiment, run)
        metric = parent.params.get("metric")
        if not metric:
            raise NotFound(f"run {parent.run_id[:12]} has no 'metric' param; is it a training run?")
        trials = workspace.search_runs(
            f"parent_run_id = '{parent.run_id}'", experiments=[parent.experiment], limit=None
        )
        higher = greater_is_better(metric)
        found = candidates(trials, metric, active)
        advice = choose(found, tolerance=tolerance, greater_is_better=higher, basis=basis)  # type: ignore[arg-type]
        front = pareto_front(found, greater_is_better=higher)
        curve = best_so_far(found, greater_is_better=higher)
        path = plot or workspace.settings.state_dir / "reports" / f"advise-{parent.run_id[:12]}.png"
        chart = tradeoff_chart(
            found, front, curve, metric=metric, currency=catalog.currency, path=path
        )
    if as_json:
        write_json(
            {
                "experiment": experiment,
                "run_id": parent.run_id,
                "metric": metric,
                "tolerance": tolerance,
                "basis": basis,
                "chosen": _candidate(advice.chosen),
                "best": _candidate(advice.best),
                "score_given_up": advice.score_given_up,
                "extra_cost": advice.extra_usd,
                "extra_training_cost": advice.extra_training_usd,
                "extra_per_thousand": advice.extra_per_thousand_usd,
                "pareto_front": [_candidate(c) for c in front],
                "best_so_far": curve,
                "plot": str(chart),
                "prices": _footer(catalog, active, "cpu_share"),
            }
        )
        return
    table = Table(title=f"Pareto front of {escape(experiment)} (cv {metric})")
    for column in ("trial", "estimator", metric, "training", "per 1,000", "latency us"):
        table.add_column(column)
    for c in front:
        mark = " *" if c is advice.chosen else ""
        table.add_row(
            f"{c.trial}{mark}",
            escape(c.estimator),
            f"{c.score:.4f}",
            _money(c.training_usd),
            _money(c.per_thousand_usd, 9),
            "-" if c.latency_us is None else f"{c.latency_us:.1f}",
        )
    console.print(table)
    chosen, best = advice.chosen, advice.best
    if chosen is best:
        console.print(
            f"choose trial {best.trial} ({escape(best.estimator)}): the best {metric} "
            f"{best.score:.4f} is also the cheapest within {tolerance:g}"
        )
    else:
        ratio = f" ({advice.extra_ratio:.1f}x)" if advice.extra_ratio else ""
        console.print(
            f"choose trial {chosen.trial} ({escape(chosen.estimator)}): {metric} "
            f"{chosen.score:.4f}, within {tolerance:g} of the best ({best.score:.4f}, trial "
            f"{best.trial} {escape(best.estimator)})"
        )
        console.print(
            f"the last {advice.score_given_up:.4f} of {metric} costs "
            f"{_money(advice.extra_per_thousand_usd, 9)} {catalog.currency} more per 1,000 "
            f"predictions{ratio if basis == 'serving' else ''} and "
            f"{_money(advice.extra_training_usd)} {catalog.currency} more to train"
        )
    console.print(escape(_footer(catalog, active, "cpu_share")), highlight=False)
    console.print(f"plot: {escape(str(chart))}", highlight=False)


def _training_run(workspace: Workspace, experiment: str, run_id: str | None) -> Run:
    """The newest training run of ``experiment``, at any depth.

    ``shipyard run`` trains in a child run of the pipeline's run (experiment
    ``<project>-pipeline``, tag ``kind=train``), a script usually in a root run; both count.
    The project's name alone finds its pipeline's or its own training experiment too.
    """
    if run_id is not None:
        return workspace.get_run(run_id)
    known = {e.name for e in workspace.list_experiments()}
    for name in (experiment, f"{experiment}-pipeline", f"{experiment}-train"):
        if name not in known:
            continue
        runs = workspace.search_runs(
            "parent_run_id is null or tags.kind = 'train'",
            experiments=[name],
            order_by=["start_time desc"],
            limit=200,
        )
        for found in runs:
            if "metric" in found.params:
                return found
    raise NotFound(
        f"experiment {experiment!r} has no training run with tuning trials; "
        "`shipyard experiments list` shows the experiments"
    )


def _candidate(c: Any) -> dict[str, Any]:
    return {
        "trial": c.trial,
        "run_id": c.run_id,
        "estimator": c.estimator,
        "score": c.score,
        "training_cost": c.training_usd,
        "per_thousand": c.per_thousand_usd,
        "latency_us": c.latency_us,
    }


@app.command()
def rightsize(
    ctx: typer.Context,
    loadtest: Annotated[str, typer.Option("--loadtest", help="The load test run (id or prefix).")],
    rps: Annotated[float, typer.Option("--rps", help="Requests per second to serve.")],
    p99_ms: Annotated[float, typer.Option("--p99-ms", help="The p99 latency target, ms.")],
    tested_on: Annotated[
        str | None,
        typer.Option(help="Instance the load test ran on (default: cost.instance_type)."),
    ] = None,
    headroom: Annotated[float, typer.Option(help="Share of capacity kept free.")] = 0.3,
    top: Annotated[int, typer.Option(min=1, help="Plans to show.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Replicas and instance type meeting an SLO at the lowest monthly cost, and what to buy."""
    from shipyard.cost.rightsizing import LoadTestResult
    from shipyard.cost.rightsizing import rightsize as size

    with open_workspace(ctx) as workspace:
        catalog, active = _pricing(workspace)
        result = LoadTestResult.from_run(workspace.get_run(loadtest))
        instance = catalog.instance(tested_on) if tested_on else active.instance
        sizing = size(
            result,
            tested_on=instance,
            catalog=catalog,
            target_rps=rps,
            target_p99_ms=p99_ms,
            headroom=headroom,
        )
    if as_json:
        write_json(
            {
                "target_rps": rps,
                "target_p99_ms": p99_ms,
                "headroom": headroom,
                "tested_on": sizing.tested_on,
                "load_test": {
                    "run_id": result.run_id,
                    "throughput_rps": result.throughput_rps,
                    "p99_ms": result.p99_ms,
                },
                "plans": [
                    {
                        "instance": p.instance,
                        "replicas": p.replicas,
                        "capacity_rps": p.capacity_rps,
                        "on_demand_monthly": p.on_demand_monthly,
                        "reserved_monthly": p.reserved_monthly,
                        "spot_mix_monthly": p.spot_mix_monthly,
                    }
                    for p in sizing.plans
                ],
                "advice": sizing.advice,
                "prices": catalog.label(),
            }
        )
        return
    table = Table(title=f"{rps:g} req/s at p99 <= {p99_ms:g} ms, {headroom:.0%} headroom")
    for column in ("instance", "replicas", "req/s each", "on-demand/mo", "reserved/mo", "mix/mo"):
        table.add_column(column, justify="left" if column == "instance" else "right")
    for p in sizing.plans[:top]:
        table.add_row(
            p.instance,
            str(p.replicas),
            f"{p.capacity_rps:,.0f}",
            f"{p.on_demand_monthly:,.2f}",
            f"{p.reserved_monthly:,.2f}",
            "-" if p.spot_mix_monthly is None else f"{p.spot_mix_monthly:,.2f}",
        )
    console.print(table)
    console.print(
        f"load test {result.run_id[:12]}: {result.throughput_rps:,.1f} req/s at p99 "
        f"{result.p99_ms:.1f} ms on {sizing.tested_on}"
    )
    for line in sizing.advice:
        console.print(f"- {escape(line)}", highlight=False)
    console.print(escape(catalog.label()), highlight=False)
