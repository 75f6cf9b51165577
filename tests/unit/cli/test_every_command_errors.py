"""Every ``shipyard`` command, given bad arguments, ends in one clear line and a documented status.

The commands are enumerated from the Typer app itself, so a new command is swept the day it is
added (issue 14, item 6). Each is run in this process, as ``main.run`` runs it for a shell:
with an unknown option (a usage error, 2), with hostile values for its required arguments, and
against a metadata store that cannot be reached (69, ``EX_UNAVAILABLE``, for every command that
opens it). A traceback anywhere, or the status of an unexpected error (70), fails the test.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest
import typer

from shipyard.cli import main
from shipyard.core.error_status import (
    ERROR_STATUS,
    EXIT_INTERNAL,
    EXIT_IO,
    EXIT_USAGE,
    status_of,
)
from shipyard.core.errors import PermissionDenied, StoreUnavailable
from tests.unit.cli.running import Result, cli, subcommands

#: Exit statuses a command may end with on bad input (docs/cli.md, "Exit status").
DOCUMENTED = {1, EXIT_USAGE, EXIT_IO} | {row.exit for row in ERROR_STATUS.values()}
DOCUMENTED.discard(EXIT_INTERNAL)
#: A value no command can take as a name, reference, path, URL or number.
HOSTILE = "nosuch@production/../../x"
#: Commands that run until stopped when their arguments are good; they get only usage errors.
LONG_RUNNING = {"demo", "monitor run", "serve"}
#: Commands whose first step is to open the metadata store.
OPEN_THE_STORE = {"runs list", "models list", "workspace info", "audit verify", "users list"}


def _commands(group: Any, prefix: str = "") -> list[tuple[str, Any]]:
    found = []
    for name, command in subcommands(group):
        path = f"{prefix} {name}".strip()
        if hasattr(command, "commands"):  # a group (typer may vendor its own click)
            found += _commands(command, path)
        else:
            found.append((path, command))
    return found


COMMANDS = _commands(typer.main.get_group(main.app))


def _hostile_args(command: Any) -> list[str]:
    return [HOSTILE for p in command.params if type(p).__name__.endswith("Argument") and p.required]


@pytest.fixture(autouse=True)
def _plain_wide_terminal(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.chdir(tmp_path)  # a command that writes where it stands writes here
    monkeypatch.setenv("COLUMNS", "250")
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(name, raising=False)


def _clear(result: Result, args: list[str], *, may_succeed: bool = False) -> None:
    """No traceback, a documented status, and an ``error:`` line or Click's usage message."""
    text = result.out + result.err
    assert "Traceback" not in text, (args, text)
    if may_succeed and result.code == 0:
        return
    assert result.code in DOCUMENTED, (args, result)
    errors = [line for line in result.err.splitlines() if line.startswith("error:")]
    if result.code == EXIT_USAGE and not errors:
        assert "Usage:" in text, (args, text)
    elif result.code != 1:  # 1 is a negative answer the command printed itself
        assert len(errors) == 1, (args, result.err)


def test_the_sweep_sees_every_command() -> None:
    names = {path for path, _ in COMMANDS}
    assert {"serve", "models promote", "runs show", "gc", "keys rotate"} <= names
    assert len(names) >= 50


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[p for p, _ in COMMANDS])
def test_an_unknown_option_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], path: str, command: Any
) -> None:
    args = [*path.split(), "--no-such-option", *_hostile_args(command)]
    result = cli(capsys, *args)
    _clear(result, args)
    assert result.code == EXIT_USAGE
    assert "No such option" in result.err


SWEPT = [(p, c) for p, c in COMMANDS if p not in LONG_RUNNING and _hostile_args(c)]


@pytest.mark.parametrize(("path", "command"), SWEPT, ids=[p for p, _ in SWEPT])
def test_hostile_arguments_end_in_one_line(
    capsys: pytest.CaptureFixture[str], path: str, command: Any
) -> None:
    args = [*path.split(), *_hostile_args(command)]
    result = cli(capsys, *args)
    _clear(result, args)
    assert result.code != 0, (args, result)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens there once the socket is closed


@pytest.mark.parametrize(
    ("path", "command"),
    [(p, c) for p, c in COMMANDS if p not in LONG_RUNNING],
    ids=[p for p, _ in COMMANDS if p not in LONG_RUNNING],
)
def test_an_unreachable_store_is_unavailable_not_a_traceback(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, path: str, command: Any
) -> None:
    url = f"postgresql+psycopg://shipyard@127.0.0.1:{_closed_port()}/shipyard?connect_timeout=5"
    monkeypatch.setenv("SHIPYARD_STORE_URL", url)
    args = [*path.split(), *_hostile_args(command)]
    result = cli(capsys, *args)
    _clear(result, args, may_succeed=True)  # a command that needs no store may succeed
    if path in OPEN_THE_STORE:
        assert result.code == status_of(StoreUnavailable).exit, (args, result)
        assert "check that it is running" in result.err


def test_the_table_gives_unavailable_and_denied_their_own_statuses() -> None:
    assert status_of(StoreUnavailable("x")).exit == 69
    assert status_of(PermissionDenied).exit == 77
    assert status_of(StoreUnavailable).http == 503


def test_serve_of_a_model_that_does_not_exist_is_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    result = cli(capsys, "serve", "nosuch@production", "--port", str(_closed_port()))
    _clear(result, ["serve", "nosuch@production"])
    assert result.code == 2
    assert "nosuch" in result.err
