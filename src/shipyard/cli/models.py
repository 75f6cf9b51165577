"""``shipyard models``: register, list, show, promote, rollback, compare, history, card.

Four-eyes review commands (``request-promotion``, ``approve``, ``reject``, ``reviews``,
``review``) are in ``cli.model_reviews``.

References are ``name`` (the latest version), ``name:3`` (version 3) or ``name@production`` (an
alias). ``promote`` exits 1 when the gate refuses (the alias stays where it was), so scripts can
tell; user errors (a bad name, ``--force`` without ``--reason``) exit 2 with one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from shipyard.cli.context import console, open_workspace
from shipyard.cli.render import JsonOption, jsonable, number, when, write_json
from shipyard.cli.tables import fit

if TYPE_CHECKING:
    import polars as pl

    from shipyard.registry.registry import ModelRegistry
    from shipyard.registry.verdict import PromotionResult
    from shipyard.track.workspace import Workspace

app = typer.Typer(
    help="The model registry: versions, aliases, gated promotion, model cards.",
    no_args_is_help=True,
)


def _registry(workspace: Workspace) -> ModelRegistry:
    from shipyard.registry.registry import ModelRegistry  # lazily: keeps `--help` fast

    return ModelRegistry.for_workspace(workspace)


@app.command()
def register(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name, e.g. churn.")],
    bundle: Annotated[
        Path,
        typer.Argument(
            help="A bundle file written by `shipyard run`.", exists=True, dir_okay=False
        ),
    ],
    run: Annotated[str | None, typer.Option("--run", help="The run that produced it.")] = None,
    description: Annotated[
        str | None, typer.Option(help="Intended use, shown on the model card.")
    ] = None,
    key: Annotated[
        str | None,
        typer.Option("--key", help="Idempotency key: a retry with the same key registers once."),
    ] = None,
) -> None:
    """Check a bundle (safe types, checksums, contract) and register it as the next version."""
    from shipyard.cli.access import acting_identity

    with open_workspace(ctx) as workspace:
        version = _registry(workspace).register(
            name,
            bundle,
            actor=acting_identity(ctx),
            run_id=run,
            description=description,
            idempotency_key=key,
        )
    console.print(
        f"registered [bold]{escape(version.ref)}[/] (bundle {version.bundle_sha256[:12]})"
    )


@app.command("list")
def list_models(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Every model with its versions and aliases."""
    with open_workspace(ctx) as workspace:
        models = _registry(workspace).list_models()
    if as_json:
        write_json(models)
        return
    table = Table(title="Models")
    for column in ("name", "versions", "latest", "aliases"):
        table.add_column(column)
    for m in models:
        aliases = ", ".join(f"{a}→{v}" for a, v in sorted(m["aliases"].items())) or "-"
        table.add_row(escape(m["name"]), str(m["versions"]), str(m["latest"]), escape(aliases))
    console.print(
        fit(table, console, keys=("name", "latest"))
        if models
        else "no models yet; `shipyard run` with a train: section registers one"
    )


@app.command()
def show(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="name, name:3 or name@alias.")],
    as_json: JsonOption = False,
) -> None:
    """A model's versions (or one version's details)."""
    with open_workspace(ctx) as workspace:
        registry = _registry(workspace)
        name = ref.split("@")[0].split(":")[0]
        versions = [registry.get(ref)] if ref != name else registry.versions(name)
        if not versions:
            registry.get(name)  # raises NotFound with what to do next
        aliases = registry.aliases(name)
    if as_json:
        write_json(
            {
                "name": name,
                "aliases": aliases,
                "versions": [
                    {
                        **jsonable(v),
                        "aliases": sorted(a for a, n in aliases.items() if n == v.version),
                    }
                    for v in versions
                ],
            }
        )
        return
    table = Table(title=f"Model {escape(name)}")
    for column in (
        "version",
        "aliases",
        "estimator",
        "metric",
        "test",
        "cv",
        "fit",
        "registered",
        "by",
    ):
        table.add_column(column)
    for v in versions:
        held = ", ".join(a for a, n in sorted(aliases.items()) if n == v.version) or "-"
        table.add_row(
            str(v.version),
            escape(held),
            escape(str(v.metrics.get("estimator") or "-")),
            v.primary_metric,
            number(v.metrics.get("test")),
            number(v.metrics.get("cv_mean")),
            escape(str(v.metrics.get("generalization") or "-")),
            when(v.created_ms),
            escape(v.created_by),
        )
    console.print(
        fit(table, console, keys=("version", "aliases"), optional=("by", "registered", "fit"))
    )
    if ref != name:  # one version: what the table has no room for
        v = versions[0]
        datasets = v.lineage.get("dataset_ids") or {}
        console.print(f"bundle sha256 {v.bundle_sha256}, run {escape(v.run_id or '-')}")
        for role, dataset in sorted(datasets.items()):
            console.print(f"dataset ({escape(str(role))}): {escape(str(dataset))}")
        if v.description:
            console.print(f"description: {escape(v.description)}")


@app.command()
def promote(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int, typer.Argument(help="The version to promote.")],
    alias: Annotated[str, typer.Option(help="The alias to move.")] = "production",
    margin: Annotated[
        float, typer.Option(help="How much better than the holder it must be.")
    ] = 0.0,
    force: Annotated[bool, typer.Option("--force", help="Skip the gate (needs --reason).")] = False,
    reason: Annotated[str | None, typer.Option(help="Why; recorded in the alias history.")] = None,
    key: Annotated[
        str | None,
        typer.Option("--key", help="Idempotency key: a retry with the same key acts once."),
    ] = None,
    test_dataset: Annotated[
        str | None,
        typer.Option(help="Dataset id to judge on (default: the candidate's own test split)."),
    ] = None,
) -> None:
    """Move an alias to a version if the gate agrees (it must beat the holder on the same rows).

    Exits 1 when the gate refuses; the refusal and its numbers are in `shipyard models history`.
    """
    from shipyard.cli.access import acting_identity

    with open_workspace(ctx) as workspace:
        # The registry checks the identity and writes the move with its audit entry.
        result = _registry(workspace).promote(
            name,
            version,
            actor=acting_identity(ctx),
            alias=alias,
            margin=margin,
            force=force,
            reason=reason,
            idempotency_key=key,
            test_data=_frame(workspace, test_dataset),
        )
    _print_result(result)
    if not result.moved and result.request_id is None:  # a request for review is no refusal
        raise typer.Exit(1)


@app.command()
def rollback(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name.")],
    alias: Annotated[str, typer.Option(help="The alias to move back.")] = "production",
    reason: Annotated[str | None, typer.Option(help="Why; recorded in the alias history.")] = None,
) -> None:
    """Move an alias back to the version it held before its last move."""
    from shipyard.cli.access import acting_identity

    with open_workspace(ctx) as workspace:
        result = _registry(workspace).rollback(
            name, alias, actor=acting_identity(ctx), reason=reason
        )
    _print_result(result)


@app.command()
def history(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name.")],
    alias: Annotated[str | None, typer.Option(help="Only this alias.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Every alias move and refused promotion: who, when, why, and the gate's numbers."""
    with open_workspace(ctx) as workspace:
        events = _registry(workspace).history(name, alias)
    if as_json:
        write_json(events)
        return
    table = Table(title=f"Alias history of {escape(name)}")
    for column in ("when", "alias", "action", "from", "to", "who", "why", "gate"):
        table.add_column(column)
    for e in events:
        gate = (
            "-"
            if e.gate is None
            else f"{number(e.gate.get('candidate_score'))} vs "
            f"{number(e.gate.get('champion_score'))}"
        )
        style = (
            "red"
            if e.action == "refused"
            else "yellow"
            if e.action in ("force", "rollback")
            else ""
        )
        table.add_row(
            when(e.at_ms),
            escape(e.alias),
            f"[{style}]{e.action}[/]" if style else e.action,
            str(e.from_version or "-"),
            str(e.to_version or "-"),
            escape(e.actor),
            escape(e.reason or ""),
            gate,
        )
    console.print(fit(table, console, keys=("alias", "to"), optional=("who", "from")))


@app.command()
def compare(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name.")],
    versions: Annotated[list[int], typer.Argument(help="Versions to compare.")],
    test_dataset: Annotated[
        str | None,
        typer.Option(help="Dataset id to score on (default: the last version's test split)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Versions side by side, re-scored on the same test rows (the last one's split)."""
    with open_workspace(ctx) as workspace:
        rows = _registry(workspace).compare(
            name, versions, test_data=_frame(workspace, test_dataset)
        )
    if as_json:
        write_json(rows)
        return
    table = Table(title=f"{escape(name)}: {rows[0]['metric']} on the same {rows[0]['rows']:,} rows")
    for column in ("version", "estimator", "recorded test", "same-rows score", "run"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            str(r["version"]),
            escape(str(r["estimator"] or "-")),
            number(r["recorded_test"]),
            number(r["same_rows_score"]),
            (r["run_id"] or "-")[:8],
        )
    console.print(table)


@app.command()
def card(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="name, name:3 or name@alias.")],
    out: Annotated[
        Path, typer.Option(help="Folder to write the card (and its plots) into.")
    ] = Path("."),
    html: Annotated[
        bool, typer.Option("--html", help="Also write a self-contained HTML page.")
    ] = False,
) -> None:
    """Write the model card: intended use, lineage, metrics with intervals, slices, limitations."""
    from shipyard.registry.card import card_plots, model_card_html, model_card_markdown

    with open_workspace(ctx) as workspace:
        registry = _registry(workspace)
        version = registry.get(ref)
        bundle = registry.load(version)
        events = registry.history(version.name)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{version.name}-v{version.version}"
    (out / f"{stem}.md").write_text(
        model_card_markdown(version, bundle, events, plots_dir=f"{stem}-plots"), encoding="utf-8"
    )
    plots = card_plots(bundle)  # plain *.png names only: safe as file names
    if plots:
        (out / f"{stem}-plots").mkdir(exist_ok=True)
        for name, png in plots.items():
            (out / f"{stem}-plots" / name).write_bytes(png)
    written = [f"{stem}.md"]
    if html:
        (out / f"{stem}.html").write_text(
            model_card_html(version, bundle, events), encoding="utf-8"
        )
        written.append(f"{stem}.html")
    console.print(f"wrote {', '.join(escape(str(out / w)) for w in written)}")


def _frame(workspace: Workspace, dataset: str | None) -> pl.DataFrame | None:
    if dataset is None:
        return None
    from shipyard.data.datasets import read_dataset

    return read_dataset(workspace, dataset).collect()


def _print_result(result: PromotionResult) -> None:
    colour = "green" if result.moved else "yellow" if result.request_id else "red"
    console.print(f"[{colour}]{escape(result.describe())}[/]")
    if result.verdict is not None:
        for check in result.verdict.checks:
            mark = "[green]ok[/]" if check.passed else "[red]failed[/]"
            console.print(f"  {mark} {check.name}: {escape(check.detail)}")


# The review commands (request-promotion, approve, reject, reviews, review) join this group.
from shipyard.cli import model_reviews as model_reviews  # noqa: E402
