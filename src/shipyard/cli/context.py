"""State shared by every command: where the project is, and the consoles."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.console import Console

if TYPE_CHECKING:
    from pathlib import Path

    import typer

    from shipyard.security.identities import Identity
    from shipyard.track.workspace import Workspace

console = Console()
err_console = Console(stderr=True)


@dataclass
class CliState:
    """Options given before the command name, and who the command acts as."""

    project_dir: Path | None
    debug: bool
    identity: Identity | None = None


def open_workspace(ctx: typer.Context) -> Workspace:
    """Open the workspace of the project the command line names."""
    from shipyard.track.workspace import Workspace  # lazily: keeps `--help` fast

    state: CliState = ctx.ensure_object(CliState) if ctx.obj is None else ctx.obj
    return Workspace.open(state.project_dir)
