"""``shipyard gc`` (retention + blob collection) and ``shipyard budget status``.

``gc`` applies the ``retention:`` section of ``shipyard.yaml`` when there is one (without it,
only blobs that nothing refers to at all are collected), then deletes unreferenced blobs older
than the grace period. ``--dry-run`` changes nothing and lists what would go, with the bytes and
the storage money per month it would save at the catalog's tier prices.

``budget status`` shows every budget of ``shipyard.yaml`` and exits 1 when one is used up, so a
scheduler can stop on it.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from shipyard.cli.context import console, open_workspace
from shipyard.cli.options import not_nan
from shipyard.cli.project import project_dir
from shipyard.cli.render import size
from shipyard.core.errors import Conflict

if TYPE_CHECKING:
    from collections.abc import Iterator
    from decimal import Decimal

    from shipyard.cost.blob_gc import GcReport
    from shipyard.cost.budget import BudgetSection
    from shipyard.cost.retention import RetentionPlan, RetentionPolicy
    from shipyard.track.workspace import Workspace

budget_app = typer.Typer(help="Spending limits and where they stand.", no_args_is_help=True)
_LISTED = 20


def _project_sections(root: Path) -> tuple[RetentionPolicy | None, BudgetSection | None]:
    from shipyard.core.settings import PROJECT_FILE
    from shipyard.pipeline.project import load_project

    if not (root / PROJECT_FILE).is_file():
        return None, None
    spec = load_project(root).spec
    return spec.retention, spec.budget


def gc(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Change nothing; list what would go.")
    ] = False,
    grace_hours: Annotated[
        float,
        typer.Option(
            "--grace-hours",
            min=0.0,
            max=87_600.0,  # ten years; infinity would overflow the cutoff time
            callback=not_nan,  # NaN passes min and max (every comparison with it is false)
            help="Never delete a blob written less than this long ago (a write in progress).",
        ),
    ] = 1.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Apply the retention policy, then delete blobs no run, dataset or model version needs."""
    from shipyard.cli.access import acting_identity
    from shipyard.cost.blob_gc import collect_garbage
    from shipyard.cost.retention import apply_retention, plan_retention
    from shipyard.security.audit_chain import security_store

    policy, _ = _project_sections(project_dir(ctx))
    me = acting_identity(ctx)
    with open_workspace(ctx) as workspace, _gc_lease(workspace, dry_run=dry_run):
        audit_log = security_store(workspace.settings, workspace.store, clock=workspace.clock)
        plan = None
        if policy is not None:
            plan = plan_retention(workspace.store, policy, workspace.clock)
            if not dry_run:
                apply_retention(workspace.store, plan, actor=me, audit_log=audit_log)
        report = collect_garbage(
            workspace,
            audit_log=audit_log,
            actor=me,
            grace_s=grace_hours * 3600,
            dry_run=dry_run,
            also_released=plan.released_keys if plan is not None and dry_run else (),
        )
        saved = _monthly_saving(workspace, report)
        result = _gc_dict(report, plan, saved)
    if as_json:
        import json

        typer.echo(json.dumps(result, indent=2))
    else:
        _print_gc(report, plan, saved, policy is not None)
    if report.missing:
        raise typer.Exit(1)


@contextlib.contextmanager
def _gc_lease(workspace: Workspace, *, dry_run: bool) -> Iterator[None]:
    """Hold the workspace's gc lease while collecting (issue 20): two collectors never race.

    A dry run changes nothing and needs no lease. The lease is renewed from a thread for as
    long as the collection takes, and released at the end.

    Raises:
        Conflict: Another ``shipyard gc`` holds the lease (it names which process).
    """
    if dry_run:
        yield
        return
    from shipyard.cost.blob_gc import GC_LEASE
    from shipyard.store.leases import Leadership, LeaseStore

    with Leadership(
        LeaseStore(workspace.store, workspace.clock), GC_LEASE, ttl_ms=60_000
    ) as leadership:
        if not leadership.held:
            holder = leadership.lease.holder if leadership.lease else "another process"
            raise Conflict(
                f"another `shipyard gc` is running ({holder} holds the gc lease); "
                "run it again once that one has finished"
            )
        yield


def _monthly_saving(workspace: Workspace, report: GcReport) -> Decimal | None:
    """Storage money per month the freed blobs cost, or None without a usable catalog."""
    from shipyard.core.errors import ShipyardError
    from shipyard.cost.catalog import catalog_for
    from shipyard.cost.retention import blob_tiers, monthly_cost

    try:
        catalog = catalog_for(workspace.settings)
        return monthly_cost(report.freed, blob_tiers(workspace.store), catalog)
    except ShipyardError:
        return None


def _gc_dict(report: GcReport, plan: RetentionPlan | None, saved: Decimal | None) -> dict[str, Any]:
    return {
        "dry_run": report.dry_run,
        "sweep_id": report.sweep_id,
        "blobs_seen": report.blobs_seen,
        "referenced": report.referenced,
        "recent": report.recent,
        "freed": report.freed,
        "bytes_freed": report.bytes_freed,
        "usd_per_month_saved": None if saved is None else str(saved),
        "kept_referenced": report.kept_referenced,
        "missing": report.missing,
        "temp_removed": report.temp_removed,
        "releases": []
        if plan is None
        else [{"kind": r.kind, "ref": r.ref, "reason": r.reason} for r in plan.releases],
        "cold": {} if plan is None else plan.cold,
    }


def _print_gc(
    report: GcReport, plan: RetentionPlan | None, saved: Decimal | None, has_policy: bool
) -> None:
    verb = "would release" if report.dry_run else "released"
    if plan is not None and plan.releases:
        table = Table(title=f"Retention: {verb} {len(plan.releases)}")
        for column in ("kind", "ref", "reason"):
            table.add_column(column)
        for r in plan.releases[:_LISTED]:
            table.add_row(r.kind, escape(r.ref), escape(r.reason))
        console.print(table)
        if len(plan.releases) > _LISTED:
            console.print(f"... and {len(plan.releases) - _LISTED} more (--json lists all)")
    elif not has_policy:
        console.print("no retention: section in shipyard.yaml; collecting unreferenced blobs only")
    if plan is not None and plan.cold:
        moved = "would move" if report.dry_run else "moved"
        console.print(
            f"{moved} {len(plan.cold)} blobs ({size(sum(plan.cold.values()))}) "
            f"to tier {escape(plan.cold_tier)}"
        )
    freed = report.freed
    if freed:
        table = Table(title=f"Blobs {'to delete' if report.dry_run else 'deleted'}")
        table.add_column("digest")
        table.add_column("size", justify="right")
        for digest, nbytes in sorted(freed.items(), key=lambda kv: -kv[1])[:_LISTED]:
            table.add_row(digest[:16], size(nbytes))
        console.print(table)
    money = "" if saved is None else f", about ${saved:.4f}/month of storage"
    action = "would free" if report.dry_run else "freed"
    console.print(
        f"{len(freed)} of {report.blobs_seen} blobs {action}: {size(report.bytes_freed)}{money}; "
        f"{report.recent} unreferenced within the grace period kept"
    )
    if report.kept_referenced:
        console.print(f"{len(report.kept_referenced)} gained a reference during the sweep: kept")
    if report.missing:
        console.print(
            f"[red]{len(report.missing)} referenced blobs are missing[/] "
            f"(first: {report.missing[0][:16]}); restore them from a backup"
        )


@budget_app.command("status")
def budget_status_command(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the statuses as JSON.")] = False,
) -> None:
    """Where every budget of shipyard.yaml stands; exits 1 when one is used up."""
    from shipyard.cost.budget import budget_status

    _, section = _project_sections(project_dir(ctx))
    if section is None or not section.limits:
        console.print("no budgets: add a budget: section with limits to shipyard.yaml")
        return
    with open_workspace(ctx) as workspace:
        statuses = [
            budget_status(workspace.store, b, settings=workspace.settings, clock=workspace.clock)
            for b in section.limits
        ]
    if as_json:
        import json

        typer.echo(json.dumps([s.to_dict() for s in statuses], indent=2))
    else:
        table = Table(title="Budgets")
        for column in ("budget", "scope", "period", "spent", "limit", "used", "crossed"):
            table.add_column(column)
        for s in statuses:
            colour = "red" if s.exceeded else "yellow" if s.crossed else "green"
            spent = f"${s.spent:.2f}" if s.unit == "usd" else f"{s.spent:.3f} CPU-h"
            limit = f"${s.limit:.2f}" if s.unit == "usd" else f"{s.limit:g} CPU-h"
            crossed = ", ".join(f"{t:.0%}" for t in s.crossed) or "-"
            table.add_row(
                escape(s.budget),
                escape(s.scope),
                s.period,
                spent,
                limit,
                f"[{colour}]{s.fraction:.0%}[/]",
                crossed,
            )
        console.print(table)
    if any(s.exceeded for s in statuses):
        raise typer.Exit(1)
