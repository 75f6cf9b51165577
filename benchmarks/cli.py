"""Read-only CLI commands vs. a floor process that opens the same SQLite file and runs a SELECT.

A command a person types to look something up (``runs list``, ``models list`` ...) should cost
little more than the process that any Python tool pays to answer from the same database: start
Python, import SQLAlchemy, open the file, run one SELECT, print. That process is the floor.

The workspace holds 1,000 runs (10 params and 5 metrics each) in two experiments and one
registered model. Every side is a fresh process (what a user's shell starts); each repetition
runs the floor and each command once, interleaved, and compares CPU-seconds (user + system of
that process, from ``wait4``) repetition by repetition (``harness.py``). Wall time is printed
too; on a 2-core box shared with other work it is the noisier figure.

Target (issue #17): every read-only command <= 2x the floor's CPU.
Run: ``.venv/bin/python benchmarks/cli.py [--runs 1000] [--repeat 5]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from harness import Comparison, python_child, report, run_child

TARGET = 2.0
COMMANDS = [
    ["runs", "list"],
    ["experiments", "list"],
    ["models", "list"],
    ["workspace", "info"],
    ["audit", "list"],
]

FLOOR = """
import sys
from sqlalchemy import create_engine, text
engine = create_engine(sys.argv[1])
with engine.connect() as connection:
    rows = connection.execute(text(
        "SELECT run_id, name, status, start_ms FROM runs ORDER BY start_ms DESC LIMIT 100"
    )).all()
print(len(rows))
"""

SETUP = """
import sys
from pathlib import Path
from shipyard.track.workspace import Workspace

root, runs = Path(sys.argv[1]), int(sys.argv[2])
with Workspace.open(root) as workspace:
    for i in range(runs):
        experiment = "churn" if i % 2 else "fraud"
        with workspace.start_run(name=f"run-{i}", experiment=experiment) as run:
            run.log_params({f"p{k}": str(i * k) for k in range(10)})
            run.log_batch([(f"m{k}", i * 0.001 * k, 0, 1_700_000_000_000 + i) for k in range(5)])
"""


def shipyard_command(root: Path) -> list[str]:
    """The console script of this virtualenv, on ``root``."""
    return [str(Path(sys.executable).with_name("shipyard")), "-C", str(root)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        python_child(SETUP, str(root), str(args.runs))
        url = f"sqlite:///{root / '.shipyard' / 'shipyard.db'}"
        base = shipyard_command(root)
        for command in COMMANDS:  # a first, unmeasured call of each: compiled bytecode, caches
            run_child([*base, *command])
        python_child(FLOOR, url)
        comparisons = {" ".join(c): Comparison(f"cli_{'_'.join(c)}", TARGET) for c in COMMANDS}
        walls: dict[str, list[float]] = {name: [] for name in [*comparisons, "floor"]}
        for i in range(args.repeat):
            order = COMMANDS if i % 2 == 0 else COMMANDS[::-1]
            floor = python_child(FLOOR, url)
            walls["floor"].append(floor.wall_s)
            for command in order:
                name = " ".join(command)
                used = run_child([*base, *command])
                walls[name].append(used.wall_s)
                comparisons[name].add(floor.cpu_s, used.cpu_s)
        for c in comparisons.values():
            c.unit = "CPU-s"
    wall = ", ".join(f"{k} {statistics.median(v):.2f}" for k, v in walls.items())
    report(
        f"read-only commands on {args.runs:,} runs vs a SQLAlchemy SELECT process "
        f"(CPU-seconds per process; median wall s: {wall})",
        list(comparisons.values()),
    )


if __name__ == "__main__":
    main()
