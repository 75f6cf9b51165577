"""Run the ``shipyard`` command in this process, as the CLI tests do."""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import pytest

from shipyard.cli import main

ANSI = re.compile(r"\x1b\[[0-9;]*m")
"""Terminal colour and style codes."""


class Result(NamedTuple):
    """Exit code and captured output (colour codes removed); unpacks as a tuple."""

    code: int
    out: str
    err: str


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> Result:
    """Run ``shipyard *args`` through the console-script entry point; never raises SystemExit."""
    capsys.readouterr()
    code: Any = 0
    try:
        main.run(list(args))
    except SystemExit as e:
        code = e.code
    captured = capsys.readouterr()
    return Result(
        0 if code is None else int(code), ANSI.sub("", captured.out), ANSI.sub("", captured.err)
    )


def subcommands(group: Any) -> list[tuple[str, Any]]:
    """A group's commands by name, through click's own lookup.

    The root group loads each command's module on first use, so its ``commands`` dict fills
    only as commands are looked up; ``list_commands`` + ``get_command`` see them all.
    """
    ctx = group.context_class(group)
    return [(name, group.get_command(ctx, name)) for name in group.list_commands(ctx)]
