"""What every benchmark here shares, so none of them can say "ok" about noise.

The rules (issue #17, after an outside run found 0.05x a floor our own benchmark called "ok"):

- **Interleaved repetitions.** The floor and Shipyard alternate (and swap order every other
  repetition), so a machine that gets busier or quieter during the run moves both sides.
- **A ratio per repetition.** Each repetition's ratio is Shipyard / floor of that repetition;
  the reported figure is the median of those ratios with its spread (min-max). Ratios of
  separately computed medians hide that the two sides were measured at different times.
- **At least three repetitions.**
- **A floor that is a floor.** When the floor was *slower* than Shipyard in most repetitions,
  the floor is not doing the same work (or was measured wrongly): the verdict is MISS with
  the reason printed, never "ok".
- **Memory is peak RSS of a separate process** (``ru_maxrss`` from ``wait4``), which counts
  what Polars, Arrow and numpy allocate outside Python; tracemalloc does not. The child is
  started from a small launcher, since Linux carries the spawning process's peak RSS into the
  child across ``exec`` (a parent holding the generated data would set every child's peak).

Scripts import this module as ``harness`` (they run as ``python benchmarks/<name>.py``, which
puts this folder first on ``sys.path``).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

MIN_REPEAT = 3


@dataclass(frozen=True)
class ChildUsage:
    """What one child process used: wall and CPU seconds, peak RSS, and its stdout."""

    wall_s: float
    cpu_s: float
    max_rss_bytes: int
    stdout: str

    def json(self) -> dict[str, object]:
        """The child's last stdout line, parsed (children report their figures as JSON)."""
        lines = [line for line in self.stdout.splitlines() if line.strip()]
        return dict(json.loads(lines[-1])) if lines else {}


_LAUNCHER = """
import json, os, subprocess, sys
process = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(process.pid, 0)
with open(sys.argv[1], "w") as out:
    json.dump({"rc": os.waitstatus_to_exitcode(status), "maxrss_kib": usage.ru_maxrss,
               "cpu_s": usage.ru_utime + usage.ru_stime}, out)
"""
"""Starts the measured command from a fresh, small interpreter and reports its rusage.

Linux carries a process's peak RSS across ``exec``: a child spawned (fork, vfork or
posix_spawn) by a benchmark parent that holds 400 MiB of generated data reports a
``ru_maxrss`` of at least 400 MiB, whatever it used itself. The launcher's own peak is a bare
interpreter's, so the command it starts inherits only that, far below any real workload.
"""


def run_child(
    argv: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    cpu: int | None = None,
) -> ChildUsage:
    """Run ``argv`` to completion and return its own resource use (not other children's).

    ``os.wait4`` gives the rusage of exactly that child, including the threads it ran (Polars,
    Arrow and BLAS pools), which ``time.process_time`` inside the parent cannot see. The child
    is started through ``_LAUNCHER``, so its peak RSS is its own, not this process's.

    Raises:
        RuntimeError: The child failed; its output is in the message.
    """
    command = list(argv)
    if cpu is not None:
        command = ["taskset", "-c", str(cpu), *command]
    # Output goes to files, not pipes: reading two pipes in turn can deadlock on a chatty child.
    with (
        tempfile.TemporaryFile("w+") as out,
        tempfile.TemporaryFile("w+") as err,
        tempfile.NamedTemporaryFile("r", suffix=".json") as usage_file,
    ):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", _LAUNCHER, usage_file.name, *command],
            stdout=out,
            stderr=err,
            text=True,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            check=False,
        )
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
        text = usage_file.read()
    usage = json.loads(text) if text else {"rc": -1}
    if usage["rc"] != 0:
        raise RuntimeError(f"{' '.join(command)} exited {usage['rc']}:\n{stderr[-4000:]}")
    # ru_maxrss is in KiB on Linux.
    return ChildUsage(wall, usage["cpu_s"], usage["maxrss_kib"] * 1024, stdout)


def python_child(code: str, *args: str, **options: object) -> ChildUsage:
    """Run Python ``code`` in a fresh interpreter of this virtualenv (see ``run_child``)."""
    return run_child([sys.executable, "-c", code, *args], **options)  # type: ignore[arg-type]


#: Shipyard may beat a floor by this much (noise) before the floor is called suspect.
SUSPECT_MARGIN = 0.05


@dataclass
class Comparison:
    """One figure measured against its floor, repetition by repetition.

    ``ratio`` is always Shipyard's figure over the floor's. For times and memory lower is
    better and the target is a ceiling (``ratio <= target``); for throughput (``higher=True``)
    the target is a floor (``ratio >= target``).

    ``peer=True`` marks a comparison against another product doing the same job (plain
    FastAPI + scikit-learn for cold start), not against a lower bound: beating a peer is the
    point, so its "floor" is never called suspect for losing.
    """

    name: str
    target: float
    unit: str = "s"
    higher: bool = False
    peer: bool = False
    floor: list[float] = field(default_factory=list)
    ours: list[float] = field(default_factory=list)

    def add(self, floor: float, ours: float) -> None:
        """Record one repetition's pair."""
        self.floor.append(floor)
        self.ours.append(ours)

    @property
    def ratios(self) -> list[float]:
        """Per repetition: Shipyard's figure over the floor's."""
        return [o / f if f else float("inf") for f, o in zip(self.floor, self.ours, strict=True)]

    @property
    def ratio(self) -> float:
        """The median of the per-repetition ratios."""
        return statistics.median(self.ratios)

    def _beats_floor(self, ratio: float) -> bool:
        if self.higher:
            return ratio > 1.0 + SUSPECT_MARGIN
        return ratio < 1.0 - SUSPECT_MARGIN

    def floor_suspect(self) -> str | None:
        """Why the floor cannot be trusted, or None.

        A floor that loses to Shipyard in most repetitions is not doing the same work, or not
        measured the same way; a ratio against it proves nothing.
        """
        if self.peer:
            return None
        wins = sum(self._beats_floor(r) for r in self.ratios)
        if wins * 2 > len(self.ratios):
            return (
                f"Shipyard beat the floor in {wins} of {len(self.ratios)} repetitions: the floor "
                "does not do the same work (or is measured differently), so this proves nothing"
            )
        return None

    def met(self) -> bool:
        """Whether the median ratio meets the target."""
        return self.ratio >= self.target if self.higher else self.ratio <= self.target

    def verdict(self) -> str:
        """``ok`` only with enough repetitions, a trustworthy floor and the target met."""
        if len(self.ratios) < MIN_REPEAT or self.floor_suspect():
            return "MISS"
        return "ok" if self.met() else "MISS"

    def describe(self) -> str:
        """A line for people: both sides' medians, the ratio and its spread."""
        rs = self.ratios
        return (
            f"  {self.name:26s} floor {statistics.median(self.floor):10.4g} {self.unit}  "
            f"shipyard {statistics.median(self.ours):10.4g} {self.unit}  "
            f"ratio {self.ratio:.3f} (min {min(rs):.3f}, max {max(rs):.3f}, n={len(rs)})"
        )

    def result_line(self) -> str:
        """The machine-readable line: ``RESULT <name> ratio=<m> target=<b> ok|MISS``."""
        return f"RESULT {self.name} ratio={self.ratio:.3f} target={self.target:g} {self.verdict()}"


def interleave(
    floor: Callable[[], float],
    ours: Callable[[], float],
    comparison: Comparison,
    repeat: int,
) -> Comparison:
    """Measure both sides ``repeat`` times, alternating which goes first."""
    for i in range(max(repeat, MIN_REPEAT)):
        if i % 2 == 0:
            f = floor()
            o = ours()
        else:
            o = ours()
            f = floor()
        comparison.add(f, o)
    return comparison


def report(title: str, comparisons: Sequence[Comparison]) -> None:
    """Print the table, the reasons for any suspect floor, then one RESULT line per target."""
    print(title)
    for c in comparisons:
        print(c.describe())
    for c in comparisons:
        reason = c.floor_suspect()
        if reason:
            print(f"  ! {c.name}: {reason}")
    for c in comparisons:
        print(c.result_line())
