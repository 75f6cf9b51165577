"""``shipyard privacy`` (detect PII, measure k-anonymity) and ``shipyard erase``.

``erase`` never prints the subject's value back: only its digest. The value can be given as
``--value -`` to read it from standard input, which keeps it out of the shell history and the
process list.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from shipyard.cli.context import console, err_console, open_workspace
from shipyard.cli.exposure import RAW_PII_HELP, masked_note, visible_rows
from shipyard.cli.options import not_nan
from shipyard.core.errors import InvalidArgument

if TYPE_CHECKING:
    from shipyard.privacy.erasure import ErasureReport

app = typer.Typer(
    help="Personal data: detect PII in a dataset version, measure k-anonymity.",
    no_args_is_help=True,
)


@app.command()
def detect(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Argument(help="Dataset id or unique prefix (6+).")],
    sample_rows: Annotated[int, typer.Option(min=1, help="Rows to inspect.")] = 10_000,
    min_share: Annotated[
        float,
        typer.Option(min=0.01, max=1.0, callback=not_nan, help="Share of values that must match."),
    ] = 0.5,
) -> None:
    """List the columns of a version that hold personal data."""
    from shipyard.data.datasets import get_dataset, read_dataset
    from shipyard.privacy.detect import detect_pii

    with open_workspace(ctx) as workspace:
        version = get_dataset(workspace, dataset)
        findings = detect_pii(
            read_dataset(workspace, version), sample_rows=sample_rows, min_share=min_share
        )
    if not findings:
        console.print(f"no personal data found in {escape(version.name)} ({version.short_id})")
        return
    table = Table(title=f"PII in {escape(version.name)} ({version.short_id})")
    for column in ("column", "kind", "share", "by"):
        table.add_column(column, justify="right" if column == "share" else "left")
    for finding in findings.values():
        share = "-" if finding.share is None else f"{finding.share:.0%}"
        table.add_row(escape(finding.column), finding.kind, share, finding.by)
    console.print(table)


@app.command()
def kanon(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Argument(help="Dataset id or unique prefix (6+).")],
    qi: Annotated[str, typer.Option("--qi", help="Quasi-identifier columns, comma-separated.")],
    sensitive: Annotated[
        str | None, typer.Option(help="Sensitive column, for l-diversity.")
    ] = None,
    k: Annotated[int, typer.Option("--k", min=1, help="The k to check against.")] = 5,
    smallest: Annotated[int, typer.Option(min=1, max=1000, help="Classes to list.")] = 10,
    raw_pii: Annotated[bool, typer.Option("--raw-pii", help=RAW_PII_HELP)] = False,
) -> None:
    """Report k-anonymity (and l-diversity) of a version over quasi-identifiers.

    The smallest classes show quasi-identifier values: raw personal data among them is
    masked without data.read_pii, and audited with it.
    """
    import polars as pl

    from shipyard.cli.access import authorize
    from shipyard.data.datasets import get_dataset, read_dataset
    from shipyard.privacy.kanon import k_anonymity
    from shipyard.security.permissions import Action

    columns = [c.strip() for c in qi.split(",") if c.strip()]
    with open_workspace(ctx) as workspace:
        me = authorize(ctx, workspace, Action.DATA_READ, f"dataset:{dataset}")
        version = get_dataset(workspace, dataset)
        report = k_anonymity(
            read_dataset(workspace, version), columns, sensitive=sensitive, n_smallest=smallest
        )
        values = pl.DataFrame(
            {c: [_text(cls.values[c]) for cls in report.smallest] for c in columns},
            schema=dict.fromkeys(columns, pl.String),
        )
        shown, exposure = visible_rows(
            workspace, me, version, values, command="privacy kanon", raw_pii=raw_pii
        )
    verdict = "[green]holds[/]" if report.satisfies(k) else "[red]does not hold[/]"
    console.print(
        f"{escape(version.name)} ({version.short_id}): {report.rows} rows in {report.classes} "
        f"classes over {escape(', '.join(columns))}"
    )
    console.print(f"k = {report.k}; k >= {k} {verdict}")
    if report.l is not None:
        console.print(
            f"l = {report.l} distinct {escape(sensitive or '')} values in the worst class"
        )
    console.print(
        f"rows in classes below {k}: {report.rows_at_risk(k)} ({report.classes_below(k)} classes)"
    )
    if note := masked_note(exposure):
        console.print(escape(note))
    table = Table(title="Smallest classes")
    for column in [*columns, "rows"]:
        table.add_column(escape(column), justify="right" if column == "rows" else "left")
    for cls, row in zip(report.smallest, shown.iter_rows(), strict=True):
        table.add_row(*(escape(str(v)) for v in row), str(cls.size))
    console.print(table)


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def erase(
    ctx: typer.Context,
    subject_column: Annotated[
        str, typer.Option("--subject-column", help="Column identifying the subject.")
    ],
    value: Annotated[
        str, typer.Option("--value", help="The subject's value; '-' reads it from stdin.")
    ],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    key_env: Annotated[
        str, typer.Option(help="Environment variable holding the pseudonymization key.")
    ] = "SHIPYARD_PSEUDONYM_KEY",
    key_file: Annotated[
        Path | None, typer.Option(help="File holding the pseudonymization key.")
    ] = None,
    log_dir: Annotated[
        list[Path] | None,
        typer.Option(
            help="Another prediction log folder a server wrote (repeatable; "
            ".shipyard/predictions is always searched)."
        ),
    ] = None,
) -> None:
    """Erase a data subject everywhere: dataset versions, prediction logs, labels, rows."""
    from shipyard.cli.access import acting_identity
    from shipyard.cli.project import project_dir
    from shipyard.monitor.erasure import log_holders
    from shipyard.privacy.erasure import erase_subject
    from shipyard.privacy.pseudonym import load_key
    from shipyard.security.audit_chain import security_store

    if not subject_column.strip():
        raise InvalidArgument("--subject-column is empty; name the column identifying the subject")
    if value == "-":
        value = sys.stdin.readline().rstrip("\r\n")
    if not value:
        raise InvalidArgument("--value is empty; give the subject's value (or '-' and stdin)")
    key = None
    if key_file is not None or os.environ.get(key_env):
        key = load_key(key_env=key_env, key_file=key_file)
    else:
        err_console.print(
            f"note: ${escape(key_env)} is not set: the audit digest will be a plain SHA-256 "
            "and pseudonymized copies of the value will not be found"
        )
    holders = log_holders(project_dir(ctx), log_dir or [])
    with open_workspace(ctx) as workspace:
        # The service checks the permission and audits both a denial and the erasure.
        me = acting_identity(ctx, workspace)
        audit_log = security_store(workspace.settings, workspace.store, clock=workspace.clock)

        def _erase(dry_run: bool) -> ErasureReport:
            return erase_subject(
                workspace,
                me,
                audit_log=audit_log,
                column=subject_column,
                value=value,
                key=key,
                holders=holders,
                dry_run=dry_run,
            )

        plan = _erase(dry_run=True)
        console.print(f"subject {plan.subject_digest[:24]}… in column {escape(subject_column)}")
        for v in plan.versions:
            console.print(
                f"  {escape(v.name)} {v.old_id[:12]} ({v.kind}): {v.rows_erased} of "
                f"{v.rows_before} rows"
            )
        _print_touched(plan)
        held = plan.versions or any(f.touched for f in plan.files) or plan.monitoring_rows
        if not held:
            console.print("no stored dataset version or log holds this subject; nothing to erase")
            _print_followups(plan)
            return
        if not yes and not typer.confirm(
            f"Rewrite {len(plan.versions)} version(s) without {plan.rows_erased} row(s), the "
            "log files and rows above, and destroy the old files?",
            default=False,
        ):
            console.print("nothing changed")
            raise typer.Exit(1)
        report = _erase(dry_run=False)
    console.print(
        f"erased {report.rows_erased} row(s) from {len(report.versions)} version(s) in run "
        f"{(report.run_id or '-')[:8]}; {len(report.destroyed_blobs)} file(s) destroyed"
    )
    for v in report.versions:
        console.print(f"  {escape(v.name)}: {v.old_id[:12]} -> {(v.new_id or '-')[:12]}")
    _print_touched(report)
    _print_followups(report)
    if report.audit is not None:
        console.print(
            f"audit: #{report.audit.seq} {report.audit.actor} {report.audit.action} "
            f"{escape(report.audit.object)}"
        )


def _print_touched(report: ErasureReport) -> None:
    verb = "holds" if report.dry_run else "erased"
    for f in report.files:
        if f.touched:
            trimmed = f" ({f.rows_trimmed} trimmed)" if f.rows_trimmed else ""
            console.print(
                f"  {f.kind} {escape(f.location)}: {verb} {f.rows} row(s){trimmed} in "
                f"{f.files} file(s)"
            )
    for table, rows in report.monitoring_rows.items():
        console.print(f"  {table}: {verb} {rows} row(s)")


def _print_followups(report: ErasureReport) -> None:
    if report.runs_to_retrain:
        console.print(
            "retrain (trained on erased data): " + ", ".join(r[:8] for r in report.runs_to_retrain)
        )
    if report.model_versions:
        console.print(
            "model versions trained on erased data (retrain and replace them): "
            + escape(", ".join(report.model_versions))
        )
    if report.derived_versions:
        console.print(
            "check by hand (derived from erased data, no subject column): "
            + ", ".join(d[:12] for d in report.derived_versions)
        )
    if report.sources:
        console.print("erase the subject at the source too: " + escape(", ".join(report.sources)))
    if report.residual:
        console.print(
            "metadata rows still holding the value (handle by hand): "
            + escape(", ".join(f"{w} ({n})" for w, n in report.residual.items()))
        )
    if report.compacted is False:
        console.print(
            "the metadata store was busy and not compacted: deleted rows may linger in its "
            "free pages until `shipyard erase` runs again or the file is vacuumed"
        )
    if report.artifacts:
        console.print(
            "run artifacts that shared a destroyed file: "
            + escape(", ".join(f"{r[:8]}/{n}" for r, n in report.artifacts))
        )
