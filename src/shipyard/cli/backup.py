"""``shipyard backup`` (create, verify, restore, list, prune) and ``shipyard dr drill``.

A backup target is a folder (``--to``/``--in``; default ``.shipyard/backups``, which should be
another disk in production: see docs/operations.md). ``create`` snapshots the metadata store and
copies the blobs it references that the target lacks; with encryption at rest on, the snapshot
and the drill's reference batch are sealed under the workspace master key (blobs already are).
``verify`` and ``restore`` refuse an incomplete, truncated or changed backup naming the file
(exit 2); ``dr drill`` exits 1 when any check fails.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from shipyard.cli.context import CliState, console
from shipyard.cli.render import size, when

if TYPE_CHECKING:
    from shipyard.core.settings import Settings
    from shipyard.store.artifacts.encrypted import BlobCipher

app = typer.Typer(
    help="Back up the workspace, check and restore backups, prune old ones.",
    no_args_is_help=True,
)
dr_app = typer.Typer(help="Disaster recovery: rehearse a restore.", no_args_is_help=True)

_JSON = typer.Option("--json", help="Print JSON instead of a table.")


def _settings(ctx: typer.Context) -> Settings:
    from shipyard.core.settings import load_settings

    state: CliState = ctx.ensure_object(CliState) if ctx.obj is None else ctx.obj
    overrides: dict[str, Any] = {}
    if state.project_dir is not None:
        overrides["project_dir"] = state.project_dir
    return load_settings(**overrides)


def _target(settings: Settings, given: Path | None) -> Path:
    return given if given is not None else settings.state_dir / "backups"


def _cipher(settings: Settings, *, required: bool) -> BlobCipher | None:
    """The workspace master key as a cipher; required when the workspace is encrypted."""
    from shipyard.security.at_rest import settings_master_key
    from shipyard.security.envelope import Envelope

    key = settings_master_key(settings)
    if key is not None:
        return Envelope(key)
    if required:
        from shipyard.security.at_rest import MasterKeyRequired

        raise MasterKeyRequired(
            f"this workspace is encrypted at rest; set ${settings.encryption.key_env} or "
            "encryption.key_file to its master key to back it up"
        )
    return None


def _resolve(path: Path) -> Path:
    """A backup folder, or a target folder meaning its newest complete backup."""
    from shipyard.store.backup.catalog import latest_backup
    from shipyard.store.backup.manifest import BACKUP_NAME

    if BACKUP_NAME.fullmatch(path.name) or not path.is_dir():
        return path
    latest = latest_backup(path)
    if latest is None:
        from shipyard.store.backup.manifest import BackupInvalid

        raise BackupInvalid(f"{path} holds no complete backup (`shipyard backup list --in {path}`)")
    return latest.folder


@app.command()
def create(
    ctx: typer.Context,
    to: Annotated[Path | None, typer.Option("--to", help="Backup target folder.")] = None,
    keep: Annotated[
        int | None, typer.Option("--keep", min=1, help="Then prune all but the newest N.")
    ] = None,
    reference_rows: Annotated[
        int,
        typer.Option(min=0, max=10_000, help="Rows per production model kept for `dr drill`."),
    ] = 20,
    as_json: Annotated[bool, _JSON] = False,
) -> None:
    """Take a consistent backup of the metadata store and the blobs it references (audited)."""
    from shipyard.cli.access import acting_identity, record
    from shipyard.cli.context import open_workspace
    from shipyard.security.permissions import Action
    from shipyard.store.backup.catalog import prune_backups
    from shipyard.store.backup.create import create_backup
    from shipyard.store.encryption import BlobKeyStore

    with open_workspace(ctx) as workspace:
        settings = workspace.settings
        encrypted = settings.encryption.enabled or bool(
            BlobKeyStore(workspace.store).current_key_id()
        )
        cipher = _cipher(settings, required=encrypted) if encrypted else None
        extras = _reference_batches(workspace, reference_rows)
        target = _target(settings, to)
        result = create_backup(
            workspace.store,
            workspace.blobs,
            target,
            cipher=cipher,
            extras=extras,
            clock=workspace.clock,
        )
        m = result.manifest
        record(
            workspace,
            acting_identity(ctx, workspace),
            Action.BACKUP_MANAGE,
            f"backup:{m.backup_id}",
            detail={"target": str(target), "blobs": len(m.blobs), "encrypted": m.encrypted},
        )
    pruned = prune_backups(target, keep) if keep is not None else None
    if as_json:
        document = {
            "backup": str(result.folder),
            "backup_id": m.backup_id,
            "created_ms": m.created_ms,
            "blobs": len(m.blobs),
            "blobs_copied": result.blobs_copied,
            "blobs_reused": result.blobs_reused,
            "encrypted": m.encrypted,
            "seconds": round(result.seconds, 3),
            "pruned": [] if pruned is None else pruned.backups,
        }
        sys.stdout.write(json.dumps(document) + "\n")
        return
    console.print(
        f"backup {escape(m.backup_id)} in {escape(str(target))}: {len(m.blobs)} blobs "
        f"({result.blobs_copied} copied, {result.blobs_reused} already there), "
        f"{'encrypted' if m.encrypted else 'not encrypted'}, {result.seconds:.2f} s"
    )
    if pruned is not None and pruned.backups:
        console.print(f"pruned {len(pruned.backups)} old backup(s), {pruned.blobs} blob(s)")


def _reference_batches(workspace: Any, rows: int) -> dict[str, bytes]:
    if rows == 0:
        return {}
    from shipyard.registry.registry import ModelRegistry
    from shipyard.serve.drill import reference_batches

    return reference_batches(ModelRegistry.for_workspace(workspace), rows=rows)


@app.command()
def verify(
    ctx: typer.Context,
    backup: Annotated[Path, typer.Argument(help="A backup folder, or a target (its newest).")],
) -> None:
    """Check a backup without restoring it: every file's checksum, its blobs, its manifest."""
    from shipyard.store.backup.verify import verify_backup

    settings = _settings(ctx)
    result = verify_backup(_resolve(backup), cipher=_cipher(settings, required=False))
    references = "" if result.references_checked else " (references not checked: no master key)"
    console.print(
        f"[green]ok[/]: backup {escape(result.manifest.backup_id)}: {result.files} files and "
        f"{result.blobs} blobs match the manifest{references}"
    )


@app.command()
def restore(
    ctx: typer.Context,
    backup: Annotated[Path, typer.Argument(help="A backup folder, or a target (its newest).")],
    to: Annotated[str, typer.Option("--to", help="Store URL of a new, empty database.")],
    blobs: Annotated[
        str | None,
        typer.Option("--blobs", help="Blob store path or URL (default: next to a SQLite --to)."),
    ] = None,
) -> None:
    """Restore a verified backup into a fresh SQLite or PostgreSQL store and blob store."""
    from shipyard.core.errors import InvalidArgument
    from shipyard.store.backup.restore import restore_backup

    settings = _settings(ctx)
    if blobs is None:
        if not to.startswith("sqlite:///"):
            raise InvalidArgument("--blobs is required when --to is not a sqlite:/// URL")
        blobs = str(Path(to.removeprefix("sqlite:///")).parent / "artifacts")
    result = restore_backup(_resolve(backup), to, blobs, cipher=_cipher(settings, required=False))
    console.print(
        f"restored backup {escape(result.verified.manifest.backup_id)} into "
        f"{escape(result.store_url)}: {sum(result.rows.values())} rows, {result.blobs} blobs "
        f"in {escape(result.blob_url)} ({result.seconds:.2f} s)"
    )


@app.command("list")
def list_(
    ctx: typer.Context,
    in_: Annotated[Path | None, typer.Option("--in", help="Backup target folder.")] = None,
    as_json: Annotated[bool, _JSON] = False,
) -> None:
    """List the backups of a target, oldest first (incomplete ones are marked)."""
    from shipyard.store.backup.catalog import list_backups

    listings = list_backups(_target(_settings(ctx), in_))
    rows: list[dict[str, Any]] = [
        {
            "backup_id": b.backup_id,
            "complete": b.manifest is not None,
            "created_ms": None if b.manifest is None else b.manifest.created_ms,
            "blobs": None if b.manifest is None else len(b.manifest.blobs),
            "bytes": None
            if b.manifest is None
            else sum(f.size_bytes for f in b.manifest.files) + sum(b.manifest.blobs.values()),
            "encrypted": None if b.manifest is None else b.manifest.encrypted,
        }
        for b in listings
    ]
    if as_json:
        sys.stdout.write(json.dumps(rows) + "\n")
        return
    table = Table(title="Backups")
    for column in ("backup", "state", "taken", "blobs", "size", "encrypted"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r["backup_id"],
            "complete" if r["complete"] else "[red]incomplete[/]",
            when(r["created_ms"]),
            "-" if r["blobs"] is None else str(r["blobs"]),
            size(r["bytes"]),
            "-" if r["encrypted"] is None else ("yes" if r["encrypted"] else "no"),
        )
    console.print(table)


@app.command()
def prune(
    ctx: typer.Context,
    keep: Annotated[int, typer.Option("--keep", min=1, help="Complete backups to keep.")],
    in_: Annotated[Path | None, typer.Option("--in", help="Backup target folder.")] = None,
) -> None:
    """Remove all but the newest N backups, and the blobs only they used."""
    from shipyard.store.backup.catalog import prune_backups

    pruned = prune_backups(_target(_settings(ctx), in_), keep)
    console.print(
        f"kept {len(pruned.kept)} backup(s); removed {len(pruned.backups)} backup(s) and "
        f"{pruned.blobs} blob(s)"
    )


@dr_app.command()
def drill(
    ctx: typer.Context,
    from_: Annotated[
        Path | None, typer.Option("--from", help="Backup target or folder (default: newest).")
    ] = None,
    scratch: Annotated[
        Path | None, typer.Option(help="Where to restore (default: a temp folder, removed).")
    ] = None,
    as_json: Annotated[bool, _JSON] = False,
) -> None:
    """Restore the newest backup elsewhere, check it, serve it; report recovery time and point."""
    from shipyard.serve.drill import run_drill

    settings = _settings(ctx)
    folder = _resolve(_target(settings, from_))
    cipher = _cipher(settings, required=False)
    if scratch is not None:
        scratch.mkdir(parents=True, exist_ok=True)
        report = run_drill(folder, scratch, settings, cipher=cipher)
    else:
        with tempfile.TemporaryDirectory(prefix="shipyard-drill-") as place:
            report = run_drill(folder, Path(place), settings, cipher=cipher)
    if as_json:
        document = {
            "backup_id": report.backup_id,
            "ok": report.ok,
            "recovery_time_s": round(report.recovery_time_s, 3),
            "recovery_point_s": round(report.recovery_point_s, 3),
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in report.checks],
        }
        sys.stdout.write(json.dumps(document) + "\n")
    else:
        table = Table(title=f"Disaster-recovery drill: {escape(report.backup_id)}")
        for column in ("check", "result", "detail"):
            table.add_column(column)
        for c in report.checks:
            table.add_row(
                escape(c.name), "[green]ok[/]" if c.ok else "[red]FAIL[/]", escape(c.detail)
            )
        table.add_row("recovery time", "", f"{report.recovery_time_s:.2f} s (restore to scored)")
        table.add_row("recovery point", "", f"{report.recovery_point_s:.0f} s (backup age)")
        console.print(table)
    if not report.ok:
        raise typer.Exit(1)
