"""``shipyard keys``: master keys for encryption at rest: generate, status, rotate.

These commands open the metadata store directly instead of the workspace, so that ``status``
and ``rotate`` work when the configured master key is missing, wrong or already replaced: the
very cases where an operator needs them. Keys are read from files (mode 600) or environment
variables and are never printed; only their ids are.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from shipyard.cli.context import CliState, console
from shipyard.cli.render import when

if TYPE_CHECKING:
    from shipyard.core.settings import Settings
    from shipyard.security.keys import MasterKey

app = typer.Typer(
    help="Master keys of encryption at rest: generate one, show status, rotate.",
    no_args_is_help=True,
)


def _settings(ctx: typer.Context) -> Settings:
    from shipyard.core.settings import load_settings

    state: CliState = ctx.ensure_object(CliState) if ctx.obj is None else ctx.obj
    overrides: dict[str, Any] = {}
    if state.project_dir is not None:
        overrides["project_dir"] = state.project_dir
    return load_settings(**overrides)


@app.command()
def generate(
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Write the key to this new file (mode 600)."),
    ] = None,
) -> None:
    """Make a new random master key (base64 of 32 bytes); prints it unless --out is given."""
    from shipyard.security.keys import generate_master_key, parse_master_key, write_key_file

    text = generate_master_key()
    key_id = parse_master_key(text, "new key").key_id
    if out is None:
        sys.stdout.write(text + "\n")
        return
    write_key_file(out, text)
    console.print(f"wrote master key {key_id} to {out} (mode 600)")


@app.command()
def status(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show whether encryption is on, the current master key and how many blobs each key wraps."""
    from shipyard.security.at_rest import settings_master_key
    from shipyard.store.encryption import BlobKeyStore
    from shipyard.store.sql import SqlStore

    settings = _settings(ctx)
    configured = settings_master_key(settings)
    store = SqlStore(settings.resolved_store_url)
    try:
        records = BlobKeyStore(store).master_keys()
    finally:
        store.close()
    current = records[-1].key_id if records else None
    document = {
        "enabled": settings.encryption.enabled,
        "configured_key_id": configured.key_id if configured else None,
        "current_key_id": current,
        "configured_key_is_current": configured is not None and configured.key_id == current,
        "keys": [
            {
                "key_id": r.key_id,
                "activated_ms": r.activated_ms,
                "retired_ms": r.retired_ms,
                "blobs": r.blob_count,
            }
            for r in records
        ],
    }
    if as_json:
        sys.stdout.write(json.dumps(document) + "\n")
        return
    console.print(f"encryption at rest: {'on' if settings.encryption.enabled else 'off'}")
    console.print(f"configured key:     {document['configured_key_id'] or '-'}")
    if configured is not None and current is not None and configured.key_id != current:
        console.print(f"[bold red]the configured key is not the current key ({current})[/]")
    if not records:
        console.print("no encrypted blobs yet")
        return
    table = Table(title="Master keys")
    for column in ("key id", "state", "activated", "retired", "blobs"):
        table.add_column(column)
    for r in records:
        state = "current" if r.key_id == current else ("retired" if r.retired_ms else "rotating")
        retired = when(r.retired_ms) if r.retired_ms else "-"
        table.add_row(r.key_id, state, when(r.activated_ms), retired, str(r.blob_count))
    console.print(table)


def _key(path: Path | None, env_var: str, role: str) -> MasterKey:
    from shipyard.core.errors import InvalidArgument
    from shipyard.security.keys import load_master_key

    key = load_master_key(key_file=path, env_var=env_var)
    if key is None:
        option = f"--{role}-key-file"
        raise InvalidArgument(f"no {role} master key: pass {option} or set ${env_var}")
    return key


@app.command()
def rotate(
    ctx: typer.Context,
    old_key_file: Annotated[
        Path | None,
        typer.Option(
            help="File with the key the data is under now (else $SHIPYARD_OLD_MASTER_KEY)."
        ),
    ] = None,
    new_key_file: Annotated[
        Path | None,
        typer.Option(help="File with the key to re-wrap under (else $SHIPYARD_MASTER_KEY)."),
    ] = None,
) -> None:
    """Re-wrap every data key under a new master key; the data itself is not rewritten.

    Crash-safe: each data key is re-wrapped in its own transaction; rerun with the same two
    keys to finish an interrupted rotation. Afterwards only the new key opens the workspace.
    """
    from shipyard.cli.access import acting_identity
    from shipyard.security.at_rest import rotate_master_key
    from shipyard.security.audit_chain import security_store
    from shipyard.security.keys import DEFAULT_KEY_ENV, OLD_KEY_ENV
    from shipyard.store.encryption import BlobKeyStore
    from shipyard.store.sql import SqlStore

    settings = _settings(ctx)
    old = _key(old_key_file, OLD_KEY_ENV, "old")
    new = _key(new_key_file, DEFAULT_KEY_ENV, "new")
    me = acting_identity(ctx)
    store = SqlStore(settings.resolved_store_url)
    try:
        report = rotate_master_key(
            BlobKeyStore(store),
            old,
            new,
            actor=me,
            audit_log=security_store(settings, store),
        )
    finally:
        store.close()
    console.print(
        f"[green]rotated[/] master key {report.old_key_id} -> {report.new_key_id}: "
        f"{report.rewrapped} data keys re-wrapped; key {report.old_key_id} is retired"
    )
    console.print(
        "next: point encryption.key_file or $SHIPYARD_MASTER_KEY at the new key, restart "
        "servers and workers, then destroy the old key"
    )
