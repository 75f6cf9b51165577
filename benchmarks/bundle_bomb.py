"""What a hostile bundle costs: registering a 2 GiB zip bomb, timed and measured in a child.

The bomb is a real bundle (a fitted model, a manifest listing every member with its SHA-256)
plus one member, ``plots/big.png``, that expands to 2 GiB of zeros from about 2 MB, with honest
headers and CRC (``tests/unit/registry/bombs.py`` writes it). Before issue 14 such a file was
registered after about 80 s and 4.5 GB of memory; now ``ModelRegistry.register`` refuses it from
the zip's directory.

A fresh child process opens a workspace (SQLite, in a temporary folder), resets its peak RSS
(``/proc/self/clear_refs``), registers the bomb, and reports the wall time of that call and the
peak RSS during it (``VmHWM``) against the RSS before it. The
target bounds what the bomb costs: under 1 s, and under 100 MB of memory above what the process
had before the call (the interpreter, NumPy, SQLAlchemy and the rest are there anyway; the
absolute peak is printed too).

Run: ``.venv/bin/python benchmarks/bundle_bomb.py [--gib 2]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TIME_TARGET_S = 1.0
MEMORY_TARGET_MB = 100.0
CHILD = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from shipyard.core.errors import ShipyardError
    from shipyard.core.settings import load_settings
    from shipyard.registry.registry import ModelRegistry
    from shipyard.security.identities import local_identity
    from shipyard.track.workspace import Workspace

    folder, bomb = Path(sys.argv[1]), Path(sys.argv[2])
    workspace = Workspace(load_settings(
        project_dir=folder,
        store_url=f"sqlite:///{folder / 'shipyard.db'}",
        artifact_root=str(folder / "artifacts"),
    ))
    registry = ModelRegistry.for_workspace(workspace)

    def status_kib(field):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])

    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
    before = status_kib("VmRSS")
    start = time.perf_counter()
    try:
        registry.register("bomb", bomb, actor=local_identity("project", source="benchmark"))
        outcome = "registered"
    except ShipyardError as e:
        outcome = f"{type(e).__name__}: {e.message}"
    seconds = time.perf_counter() - start
    after = status_kib("VmHWM")
    workspace.close()
    print(json.dumps({"seconds": seconds, "before_kib": before, "after_kib": after,
                      "outcome": outcome}))
    """
)


def build_bomb(path: Path, gib: int) -> int:
    """Write a real bundle with a ``gib`` GiB member at ``path``; return the file's size."""
    from tests.unit.registry.bombs import RawMember, with_members, zeros_deflated
    from tests.unit.registry.models import fitted

    from shipyard.registry.bundle import write_bundle

    model = fitted("logistic", "binary")
    good = path.with_name("good.zip")
    write_bundle(good, model.model, model.manifest)
    size = gib << 30
    crc, sha = _zeros_crc_and_sha(size)
    bomb = RawMember("plots/big.png", zeros_deflated(size), size, crc)
    data = with_members(good.read_bytes(), [bomb], listed={bomb.name: sha})
    path.write_bytes(data)
    return len(data)


def _zeros_crc_and_sha(size: int) -> tuple[int, str]:
    from tests.unit.registry.bombs import CRC_ZEROS_2GIB, GIB2, SHA_ZEROS_2GIB

    if size == GIB2:
        return CRC_ZEROS_2GIB, SHA_ZEROS_2GIB
    import hashlib
    import zlib

    chunk, crc, digest = bytes(1 << 24), 0, hashlib.sha256()
    for _ in range(size // len(chunk)):
        crc = zlib.crc32(chunk, crc)
        digest.update(chunk)
    return crc, digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=int, default=2, help="what the bomb expands to, in GiB")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        bomb = Path(folder) / "bomb.zip"
        size = build_bomb(bomb, args.gib)
        workspace = Path(folder) / "workspace"
        workspace.mkdir()
        child = subprocess.run(
            [sys.executable, "-c", CHILD, str(workspace), str(bomb)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=True,
        )
    result = json.loads(child.stdout.strip().splitlines()[-1])
    added_mb = (result["after_kib"] - result["before_kib"]) / 1024
    peak_mb = result["after_kib"] / 1024  # the peak since the reset, imports included
    print(f"bomb: {size / 1e6:.1f} MB file expanding to {args.gib} GiB")
    print(f"outcome: {result['outcome']}")
    print(
        f"register: {result['seconds']:.3f} s, peak RSS {peak_mb:.0f} MB "
        f"({added_mb:.1f} MB above the process before the call)"
    )
    refused = result["outcome"] != "registered"
    # Absolute targets (a refusal has no floor doing the same work): the "ratio" is the figure
    # over its bound, so <= 1 is ok; a bomb that was registered is a MISS whatever the figures.
    for name, figure, bound in (
        ("bundle_bomb_seconds", result["seconds"], TIME_TARGET_S),
        ("bundle_bomb_added_rss_mb", added_mb, MEMORY_TARGET_MB),
    ):
        ok = refused and figure <= bound
        print(f"RESULT {name} ratio={figure / bound:.3f} target=1 {'ok' if ok else 'MISS'}")


if __name__ == "__main__":
    main()
