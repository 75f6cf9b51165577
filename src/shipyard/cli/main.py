"""The ``shipyard`` command: one Typer app, one module per command group.

Errors print one line and exit with the status the error table gives (docs/cli.md, "Exit
status"); ``--debug`` shows the traceback instead. Usage errors (unknown command, bad option)
exit 2, an interrupt exits 130.
Nothing is built at import time: each command opens the workspace it needs, and each command's
module is imported only when that command runs (``_COMMANDS``).

The entry callback checks every command against the permission table before it runs
(``cli.access.enforce``): the command is found from the rest of the command line, which the
root group keeps for it (click hands a group's callback only the subcommand's name). ``--help``
is answered without a check: it shows text and changes nothing.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.markup import escape
from typer.core import TyperGroup

from shipyard.cli.context import CliState, err_console
from shipyard.core.error_status import EXIT_INTERNAL, EXIT_IO, status_of
from shipyard.core.errors import InvalidArgument, ShipyardError

_REST = "shipyard.rest"  # ctx.meta key: the arguments after the subcommand's name


@dataclass(frozen=True)
class _Entry:
    """Where a top-level command lives: ``module:attribute``, a Typer group or a function."""

    module: str
    attribute: str
    group: bool

    def load(self, name: str) -> Any:
        """Import the module and build the click command (typer vendors click's types)."""
        target = getattr(importlib.import_module(self.module), self.attribute)
        if self.group:
            command = typer.main.get_group(target)
            command.name = name
            return command
        single = typer.Typer(add_completion=False)
        single.command(name=name)(target)
        return typer.main.get_command(single)


def _group(module: str, attribute: str = "app") -> _Entry:
    return _Entry(f"shipyard.cli.{module}", attribute, group=True)


def _command(module: str, attribute: str) -> _Entry:
    return _Entry(f"shipyard.cli.{module}", attribute, group=False)


# The command table, in the order ``--help`` lists it. A command's module is imported only when
# that command runs (or a help page lists it): ``runs list`` need not import what ``serve`` or
# ``run`` need, and start-up is most of a read-only command's time (issue #17).
_COMMANDS: dict[str, _Entry] = {
    "workspace": _group("workspace"),
    "runs": _group("runs"),
    "experiments": _group("experiments"),
    "demo": _command("demo", "demo"),
    "init": _command("project", "init"),
    "run": _command("project", "run"),
    "data": _group("data"),
    "models": _group("models"),
    "comments": _group("comments"),
    "activity": _command("comments", "activity"),
    "serve": _command("serve", "serve"),
    "predict": _command("serve", "predict"),
    "export": _command("serve", "export"),
    "deploy": _group("serve", "deploy_app"),
    "tracking-server": _command("tracking", "tracking_server"),
    "loadtest": _command("loadtest", "loadtest"),
    "lineage": _command("data", "lineage"),
    "privacy": _group("privacy"),
    "erase": _command("privacy", "erase"),
    "monitor": _group("monitor"),
    "users": _group("security", "users_app"),
    "tokens": _group("security", "tokens_app"),
    "roles": _group("security", "roles_app"),
    "audit": _group("security", "audit_app"),
    "gc": _command("retention", "gc"),
    "budget": _group("retention", "budget_app"),
    "cost": _group("cost"),
    "keys": _group("keys"),
    "backup": _group("backup"),
    "dr": _group("backup", "dr_app"),
    "stream": _group("stream"),
}


class _RootGroup(TyperGroup):
    """The root group: loads each command on first use, and keeps the subcommand's arguments.

    The arguments are for the entry callback's check (click hands a group's callback only the
    subcommand's name).
    """

    def list_commands(self, ctx: Any) -> list[str]:
        """Every command's name, in the table's order, without importing any of them."""
        return [*_COMMANDS, *(name for name in self.commands if name not in _COMMANDS)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        """The named command, its module imported now (once); None for an unknown name."""
        command = self.commands.get(cmd_name)
        if command is None and cmd_name in _COMMANDS:
            command = _COMMANDS[cmd_name].load(cmd_name)
            self.commands[cmd_name] = command
        return command

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        """Resolve as usual, and remember what follows the subcommand's name."""
        name, command, rest = super().resolve_command(ctx, args)
        ctx.meta[_REST] = list(rest)
        return name, command, rest


app = typer.Typer(
    name="shipyard",
    cls=_RootGroup,
    help="Shipyard: data, training, registry, serving, monitoring and cost in one tool.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def main(
    ctx: typer.Context,
    project_dir: Annotated[
        Path | None,
        typer.Option(
            "--project-dir", "-C", help="Project folder (default: $SHIPYARD_PROJECT_DIR or cwd)."
        ),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    """Shipyard: data, training, registry, serving, monitoring and cost in one tool."""
    ctx.obj = CliState(project_dir=project_dir, debug=debug)
    if ctx.resilient_parsing:  # shell completion: nothing runs
        return
    command = _command_path(ctx)
    if command is not None:
        from shipyard.cli.access import enforce

        ctx.obj.identity = enforce(ctx, command)


def _command_path(ctx: typer.Context) -> str | None:
    """The command the line names (``models promote``); None for ``--help`` or a usage error.

    Groups below the root take no options of their own, so the first argument that is not an
    option names the next command. The leaf command's arguments are parsed leniently here only
    to see whether ``--help`` was given as an option (not as some option's value).
    """
    name = ctx.invoked_subcommand
    args: list[str] = list(ctx.meta.get(_REST, []))
    command: Any = ctx.command
    parts: list[str] = []
    while name is not None:
        command = command.get_command(ctx, name)
        if command is None:
            return None  # click reports the unknown command
        parts.append(name)
        if not hasattr(command, "get_command"):  # a leaf
            leaf = command.make_context(name, list(args), parent=ctx, resilient_parsing=True)
            source = leaf.get_parameter_source("help")
            if source is not None and source.name == "COMMANDLINE":
                return None
            return " ".join(parts)
        if not args or args[0] in ("-h", "--help"):
            return None  # the group's help (no_args_is_help shows it too)
        name, args = args[0], args[1:]
    return None


def run(argv: list[str] | None = None) -> None:
    """Entry point of the console script: every error is one line and a documented status.

    Typer runs in standalone mode, so it reports usage errors itself (exit 2), turns
    Ctrl-C into exit 130 and ``--help`` into exit 0; everything else that escapes a command
    reaches here. A ``ShipyardError`` exits with its status from the one error table
    (``shipyard.core.error_status``), an ``OSError`` with 74, anything else (a bug) with 70,
    each as one ``error:`` line; ``--debug`` lets the exception through with its traceback.
    (Catching click's exception classes here would be fragile: recent Typer versions vendor
    click, and its exceptions are no longer ``click.ClickException``.)
    """
    args = sys.argv[1:] if argv is None else argv
    _quiet_library_warnings()
    try:
        _refuse_nul(args)
        app(args=args, prog_name="shipyard", standalone_mode=True)
    except ShipyardError as e:
        if "--debug" in args:
            raise
        _fail(e.message, status_of(e).exit)
    except OSError as e:
        if "--debug" in args:
            raise
        where = f" ({e.filename})" if e.filename else ""
        _fail(f"{e.strerror or e}{where}; check the path, its permissions and free space", EXIT_IO)
    except Exception as e:
        if "--debug" in args:
            raise
        _fail(
            f"unexpected {type(e).__name__}: {e}; this is a bug in Shipyard: "
            "rerun with --debug for the traceback and report it",
            EXIT_INTERNAL,
        )


def _fail(message: str, status: int) -> NoReturn:
    # soft_wrap: one line whatever the terminal width; escape: messages quote user input.
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    sys.exit(status)


def _quiet_library_warnings() -> None:
    """Show a library's warning as one line naming the library, not its source file and line.

    ``UserWarning: X does not have valid feature names`` under a path into site-packages tells
    a user nothing they can act on; the message and where it came from may.
    """
    import warnings

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: object = None,
        line: str | None = None,
    ) -> None:
        origin = _package_of(filename)
        text = str(message).strip().splitlines()[0] if str(message).strip() else category.__name__
        err_console.print(
            f"[yellow]warning[/] ({escape(origin)}): {escape(text)}",
            highlight=False,
            soft_wrap=True,
        )

    warnings.showwarning = show


def _package_of(filename: str) -> str:
    """The top-level package a file belongs to (``sklearn``), or the file's name."""
    parts = Path(filename).parts
    for marker in ("site-packages", "dist-packages", "src"):
        if marker in parts:
            index = len(parts) - 1 - parts[::-1].index(marker)
            if index + 1 < len(parts):
                return Path(parts[index + 1]).stem
    return Path(filename).stem


def _refuse_nul(args: list[str]) -> None:
    """A NUL byte fits no name, path or filter, and PostgreSQL text refuses it outright.

    A shell cannot pass one, but ``run([...])`` from Python can. The argument is named by
    position, not quoted: it may be a secret (``erase --value``).
    """
    for number, arg in enumerate(args, start=1):
        if "\x00" in arg:
            raise InvalidArgument(f"argument {number} contains a NUL character; remove it")


if __name__ == "__main__":
    run()
