"""``shipyard data`` and ``shipyard lineage``: dataset versions, profiles, diffs, quarantine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from shipyard.cli.context import console, open_workspace
from shipyard.cli.exposure import RAW_PII_HELP, masked_note, visible_rows
from shipyard.cli.render import JsonOption, number, size, when, write_json
from shipyard.cli.tables import fit

app = typer.Typer(
    help="Dataset versions: list, show, profile, diff, quarantine.", no_args_is_help=True
)


@app.command(name="list")
def list_(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="Only versions of this dataset.")] = None,
    kind: Annotated[str | None, typer.Option(help="data or quarantine.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List dataset versions, newest first."""
    from shipyard.data.datasets import list_datasets

    with open_workspace(ctx) as workspace:
        versions = list_datasets(workspace, name, kind=kind)
    if as_json:
        write_json([_version_json(v) for v in versions])
        return
    if not versions:
        console.print("no datasets yet: `shipyard run` makes them")
        return
    table = Table(title=f"Datasets ({len(versions)})")
    for column in ("id", "name", "kind", "rows", "columns", "size", "created"):
        table.add_column(
            column, justify="right" if column in ("rows", "columns", "size") else "left"
        )
    for v in versions:
        table.add_row(
            v.short_id,
            escape(v.name),
            v.kind,
            str(v.row_count),
            str(len(v.schema)),
            size(v.size_bytes),
            when(v.created_ms),
        )
    console.print(fit(table, console, keys=("id", "name"), optional=("kind", "size")))


@app.command()
def show(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Argument(help="Dataset id or unique prefix (6+).")],
    rows: Annotated[int, typer.Option(min=0, max=1000, help="Rows to preview.")] = 10,
    raw_pii: Annotated[bool, typer.Option("--raw-pii", help=RAW_PII_HELP)] = False,
    as_json: JsonOption = False,
) -> None:
    """Show a version: schema, personal-data tags, lineage details and the first rows.

    The rows need data.read (data-scientist); raw personal data in them needs data.read_pii.
    """
    from shipyard.cli.access import authorize
    from shipyard.data.datasets import get_dataset, pii_tags, read_dataset
    from shipyard.security.permissions import Action, check

    with open_workspace(ctx) as workspace:
        me = authorize(ctx, workspace, Action.DATA_METADATA, f"dataset:{dataset}")
        version = get_dataset(workspace, dataset)
        may_read = check(me, Action.DATA_READ).allowed
        frame = read_dataset(workspace, version).head(rows if may_read else 0).collect()
        preview, exposure = visible_rows(
            workspace, me, version, frame, command="data show", raw_pii=raw_pii
        )
    if as_json:
        write_json(
            {
                **_version_json(version),
                "pii": pii_tags(version),
                "rows": preview.to_dicts() if rows and may_read else None,
                "masked": masked_note(exposure),
            }
        )
        return
    console.print(f"[bold]{escape(version.name)}[/] {version.dataset_id} ({version.kind})")
    console.print(
        f"{version.row_count} rows, {size(version.size_bytes)}, created "
        f"{when(version.created_ms)}, run {(version.run_id or '-')[:8]}"
    )
    if version.parent_ids:
        console.print("parents: " + ", ".join(p[:12] for p in version.parent_ids))
    if tags := pii_tags(version):
        console.print("personal data: " + escape(", ".join(f"{c} ({t})" for c, t in tags.items())))
    if version.lineage:
        console.print("lineage: " + escape(json.dumps(version.lineage)))
    if rows and not may_read:
        console.print(f"rows hidden: reading rows needs {Action.DATA_READ} (data-scientist)")
    elif rows:
        if note := masked_note(exposure):
            console.print(escape(note))
        table = Table(title="Preview")
        for column in preview.columns:
            table.add_column(escape(column))
        for row in preview.iter_rows():
            table.add_row(*(escape(_cell(v)) for v in row))
        console.print(table)


@app.command()
def profile(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Argument(help="Dataset id or unique prefix (6+).")],
    as_json: JsonOption = False,
) -> None:
    """Show the per-column profile of a version."""
    from shipyard.data.datasets import dataset_profile, get_dataset

    with open_workspace(ctx) as workspace:
        version = get_dataset(workspace, dataset)
    prof = dataset_profile(version).to_dict()
    if as_json:
        write_json({"dataset_id": version.dataset_id, "name": version.name, "profile": prof})
        return
    table = Table(title=f"Profile of {escape(version.name)} ({version.short_id})")
    for column in ("column", "type", "pii", "nulls", "distinct", "min", "mean", "max", "top"):
        table.add_column(column)
    for col in prof.get("columns", []):
        top = col.get("top_values") or []
        table.add_row(
            escape(str(col.get("name"))),
            str(col.get("dtype", "")),
            escape(str(col.get("pii") or "-")),
            str(col.get("nulls", "")),
            str(col.get("distinct", "")),
            _stat(col.get("min")),
            _stat(col.get("mean")),
            _stat(col.get("max")),
            escape(", ".join(f"{t['value']} ({t['count']})" for t in top[:3])),
        )
    console.print(table)


@app.command()
def diff(
    ctx: typer.Context,
    a: Annotated[str, typer.Argument(help="Older version id or prefix.")],
    b: Annotated[str, typer.Argument(help="Newer version id or prefix.")],
    as_json: JsonOption = False,
) -> None:
    """Compare two versions: schema changes, row counts, per-column profile deltas."""
    from shipyard.data.datasets import diff as dataset_diff

    with open_workspace(ctx) as workspace:
        result = dataset_diff(workspace, a, b)
    if as_json:
        write_json(result)
        return
    console.print_json(json.dumps(_plain(result), default=str))


@app.command()
def quarantine(
    ctx: typer.Context,
    dataset: Annotated[
        str | None, typer.Argument(help="A quarantine version (default: newest).")
    ] = None,
    rows: Annotated[int, typer.Option(min=1, max=10_000, help="Rows to show.")] = 20,
    raw_pii: Annotated[bool, typer.Option("--raw-pii", help=RAW_PII_HELP)] = False,
    as_json: JsonOption = False,
) -> None:
    """Show quarantined rows with the checks each one failed (raw personal data masked).

    Needs data.read (data-scientist); raw personal data in the rows needs data.read_pii.
    """
    from shipyard.cli.access import authorize
    from shipyard.data.datasets import get_dataset, list_datasets, read_dataset
    from shipyard.security.permissions import Action

    with open_workspace(ctx) as workspace:
        me = authorize(ctx, workspace, Action.DATA_READ, f"dataset:{dataset or 'quarantine'}")
        if dataset is None:
            versions = list_datasets(workspace, kind="quarantine")
            if not versions:
                if as_json:
                    write_json(None)
                else:
                    console.print("nothing in quarantine")
                return
            version = versions[0]
        else:
            version = get_dataset(workspace, dataset)
        frame, exposure = visible_rows(
            workspace,
            me,
            version,
            read_dataset(workspace, version).head(rows).collect(),
            command="data quarantine",
            raw_pii=raw_pii,
        )
    if as_json:
        write_json(
            {**_version_json(version), "rows": frame.to_dicts(), "masked": masked_note(exposure)}
        )
        return
    console.print(
        f"[bold]{escape(version.name)}[/] ({version.short_id}): "
        f"{version.row_count} row(s) in quarantine"
    )
    if note := masked_note(exposure):
        console.print(escape(note))
    table = Table()
    for column in frame.columns:
        table.add_column(escape(column))
    for row in frame.iter_rows():
        table.add_row(*(escape(_cell(v)) for v in row))
    console.print(table)


def lineage(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Argument(help="Dataset id or unique prefix (6+).")],
    openlineage: Annotated[
        Path | None, typer.Option("--openlineage", help="Also write OpenLineage events (JSON).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Print the upstream graph of a dataset version."""
    from shipyard.data.datasets import get_dataset
    from shipyard.data.lineage import lineage_graph, openlineage_events, render_tree

    with open_workspace(ctx) as workspace:
        graph = lineage_graph(workspace.store, get_dataset(workspace, dataset).dataset_id)
    if as_json:
        write_json(graph)
    else:
        console.print(escape(render_tree(graph)))
    if openlineage is not None:
        events = openlineage_events(graph)
        openlineage.write_text(json.dumps(events, indent=2), encoding="utf-8")
        console.print(f"wrote {len(events)} OpenLineage event(s) to {escape(str(openlineage))}")


def _version_json(v: Any) -> dict[str, Any]:
    """The facts ``data list`` shows of a version, for scripts."""
    return {
        "dataset_id": v.dataset_id,
        "name": v.name,
        "kind": v.kind,
        "rows": v.row_count,
        "columns": len(v.schema),
        "schema": v.schema,
        "size_bytes": v.size_bytes,
        "created_ms": v.created_ms,
        "run_id": v.run_id,
        "parent_ids": list(v.parent_ids),
        "lineage": v.lineage,
    }


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return number(value)
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return "null" if value is None else str(value)


def _stat(value: Any) -> str:
    return (
        number(value) if isinstance(value, int | float) else ("-" if value is None else str(value))
    )


def _plain(value: Any) -> Any:
    import dataclasses

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v) for k, v in dataclasses.asdict(value).items()}
    return value
