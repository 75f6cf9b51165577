"""Every ```python block of README.md and docs/*.md runs, as the page shows it.

A page's blocks run in order in one namespace (later blocks use what earlier ones made, as a
reader would), in a fresh empty folder that is also the project (``SHIPYARD_PROJECT_DIR``), in
a subprocess of their own so the default workspace and settings are the page's alone. A block
that cannot run by itself is marked by the line right before its fence::

    <!-- not-run: needs a running server on port 8000 -->

and the reason must be given. Blocks use the public API only (``import shipyard as sy``): a
deep import ``shipyard.<package>...`` in a snippet would teach an internal path.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
NOT_RUN = re.compile(r"^<!--\s*not-run:(?P<reason>.*?)-->\s*$")
DEEP_IMPORT = re.compile(r"^\s*(from|import)\s+shipyard\.\w+", re.MULTILINE)

# Runs each block with the markdown file's own line numbers, so a traceback points at the page.
RUNNER = """
import json, sys
blocks = json.loads(sys.stdin.read())
namespace = {"__name__": "__main__"}
for block in blocks:
    padded = "\\n" * (block["line"] - 1) + block["code"]
    exec(compile(padded, block["page"], "exec"), namespace)
"""


@dataclass(frozen=True)
class Block:
    """One ```python block: where it starts (the line after the fence) and its code."""

    page: Path
    line: int
    code: str
    not_run: str | None  # the reason given, or None when the block runs


def blocks(page: Path) -> list[Block]:
    """The ```python blocks of ``page``, in order."""
    found, lines = [], page.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```python":
            marker = NOT_RUN.match(lines[i - 1].strip()) if i > 0 else None
            end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
            code = "\n".join(lines[i + 1 : end]) + "\n"
            reason = marker["reason"].strip() if marker else None
            found.append(Block(page, i + 2, code, reason))
            i = end
        i += 1
    return found


def _id(page: Path) -> str:
    return str(page.relative_to(ROOT))


RUNNABLE = [page for page in PAGES if any(b.not_run is None for b in blocks(page))]


def test_the_pages_hold_python_blocks() -> None:
    # A parser that found nothing would make every other test here pass vacuously.
    counted = {_id(page): len(blocks(page)) for page in PAGES}
    assert counted["README.md"] >= 1
    assert counted["docs/monitoring.md"] >= 3
    assert sum(counted.values()) >= 6


@pytest.mark.parametrize("page", PAGES, ids=_id)
def test_blocks_that_do_not_run_say_why(page: Path) -> None:
    for block in blocks(page):
        assert block.not_run != "", f"{_id(page)}:{block.line}: give the reason after not-run:"


@pytest.mark.parametrize("page", PAGES, ids=_id)
def test_blocks_use_the_public_api_only(page: Path) -> None:
    for block in blocks(page):
        deep = DEEP_IMPORT.search(block.code)
        assert deep is None, (
            f"{_id(page)}:{block.line}: {deep.group(0).strip()!r} is internal; "
            "use `import shipyard as sy` and the names in shipyard.__all__"
        )


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("page", RUNNABLE, ids=_id)
def test_the_pages_blocks_run(page: Path, tmp_path: Path) -> None:
    runnable = [
        {"page": str(page), "line": b.line, "code": b.code}
        for b in blocks(page)
        if b.not_run is None
    ]
    env = {**os.environ, "SHIPYARD_PROJECT_DIR": str(tmp_path)}
    env.pop("SHIPYARD_STORE_URL", None)  # the page's own embedded workspace
    done = subprocess.run(
        [sys.executable, "-c", RUNNER],
        input=json.dumps(runnable),
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    assert done.returncode == 0, f"{_id(page)} failed:\n{done.stderr[-6000:]}"


def test_a_marked_block_is_recognised(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "text\n<!-- not-run: needs a server -->\n```python\nraise SystemExit(1)\n```\n"
        "```python\nx = 1\n```\n"
    )
    first, second = blocks(page)
    assert (first.not_run, first.line, first.code) == ("needs a server", 4, "raise SystemExit(1)\n")
    assert (second.not_run, second.line) == (None, 7)
