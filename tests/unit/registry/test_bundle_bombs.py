"""Hostile bundles cost nothing: refused from their headers, or at the first byte too many.

Each bomb is a real zip written byte by byte (``bombs``). The 2 GiB bomb is read in a child
process whose address space is capped a few hundred MiB above what it has after importing: a
reader that decompressed the member (as every load path once did) dies there with MemoryError
instead of giving the clear refusal asserted here. Time and peak memory are measured by
``benchmarks/bundle_bomb.py``, not asserted.
"""

from __future__ import annotations

import ast
import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from shipyard.core.errors import IntegrityFailure, InvalidData
from shipyard.core.settings import load_settings
from shipyard.registry.bundle import read_bundle, write_bundle
from shipyard.registry.registry import ModelRegistry
from shipyard.registry.safe_format import load_model
from shipyard.track.workspace import Workspace
from tests.identities import OPERATOR
from tests.unit.registry.bombs import (
    RawMember,
    declared_bomb,
    honest,
    lying_bomb,
    raw_zip,
    symlink_to,
    with_members,
    zeros_deflated,
)
from tests.unit.registry.models import fitted, members, zip_of

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parents[3]
_CHILD = textwrap.dedent(
    """
    import resource, sys
    from pathlib import Path
    from shipyard.core.errors import ShipyardError
    from shipyard.registry.bundle import read_bundle

    def vm_bytes():
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024

    head_room = int(sys.argv[2])
    limit = vm_bytes() + head_room
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        read_bundle(Path(sys.argv[1]))
    except ShipyardError as e:
        print("REFUSED", type(e).__name__, e.message)
    except MemoryError:
        print("MEMORY ERROR")
    else:
        print("LOADED")
    """
)


@pytest.fixture(scope="module")
def good_bundle(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    model = fitted("logistic", "binary")
    path = tmp_path_factory.mktemp("good") / "bundle.zip"
    write_bundle(path, model.model, model.manifest)
    return path.read_bytes()


def _workspace(directory: Path, name: str) -> Workspace:
    return Workspace(
        load_settings(
            project_dir=directory,
            store_url=f"sqlite:///{directory / name}.db",
            artifact_root=str(directory / name),
        )
    )


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[ModelRegistry]:
    workspace = _workspace(tmp_path, "shipyard")
    yield ModelRegistry.for_workspace(workspace)
    workspace.close()


def test_a_2_gib_bomb_is_refused_from_its_headers_in_bounded_memory(
    tmp_path: Path, good_bundle: bytes
):
    bomb = declared_bomb(good_bundle)
    assert len(bomb) < 4 << 20  # 2 GiB declared in about 2 MB
    path = tmp_path / "bomb.zip"
    path.write_bytes(bomb)
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), str(384 << 20)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
        check=False,
    )
    assert child.returncode == 0, child.stderr
    assert child.stdout.startswith("REFUSED InvalidData"), child.stdout
    assert "would expand to" in child.stdout
    assert "SHIPYARD_REGISTRY__MAX_BUNDLE_BYTES" in child.stdout


def test_registering_a_bomb_stores_nothing(
    registry: ModelRegistry, tmp_path: Path, good_bundle: bytes
):
    path = tmp_path / "bomb.zip"
    path.write_bytes(declared_bomb(good_bundle))
    before = set(registry.blobs.iter_digests())
    with pytest.raises(InvalidData, match="would expand to"):
        registry.register("churn", path, actor=OPERATOR)
    assert registry.list_models() == []
    assert set(registry.blobs.iter_digests()) == before


def test_a_bomb_under_the_cap_is_refused_by_its_ratio(good_bundle: bytes):
    size = 64 << 20
    bomb = RawMember("plots/zeros.png", zeros_deflated(size), size, 0)
    data = with_members(good_bundle, [bomb], listed={bomb.name: "0" * 64})
    with pytest.raises(InvalidData, match=r"'plots/zeros\.png' would expand .* a ratio over 200"):
        read_bundle(data)


def test_a_member_that_expands_past_its_header_is_refused_at_the_first_extra_byte(
    good_bundle: bytes,
):
    for declared in (1000, 32 << 20):
        bomb = lying_bomb(good_bundle, declared)
        with pytest.raises(InvalidData, match=r"expands past the \d+ bytes its header declares"):
            read_bundle(bomb, max_ratio=2000)


def test_a_member_that_ends_short_of_its_header_is_refused(good_bundle: bytes):
    short = honest("card.md", b"# Card\n" * 100)
    short = RawMember(short.name, short.payload, short.size + 10, short.crc)
    data = with_members(good_bundle, [short], listed={short.name: "0" * 64})
    with pytest.raises(InvalidData, match=r"'card\.md' holds 700 bytes but declares 710"):
        read_bundle(data)
    stored = RawMember("card.md", b"x" * 10, 1 << 30, 0, method=0)
    data = with_members(good_bundle, [stored], listed={stored.name: "0" * 64})
    with pytest.raises(InvalidData, match=r"stored member 'card\.md' declares"):
        read_bundle(data)


def test_oversized_totals_are_refused_by_argument_and_by_setting(
    registry: ModelRegistry, tmp_path: Path, good_bundle: bytes, monkeypatch: pytest.MonkeyPatch
):
    noise = os.urandom(600 << 10)  # incompressible: no ratio to catch it
    parts = [honest(f"plots/{i}.png", noise) for i in range(3)]
    digest = hashlib.sha256(noise).hexdigest()
    data = with_members(good_bundle, parts, listed={p.name: digest for p in parts})
    assert read_bundle(data).file("plots/0.png") == noise
    with pytest.raises(InvalidData, match="would expand to"):
        read_bundle(data, max_uncompressed=1 << 20)
    (tmp_path / "shipyard.yaml").write_text("registry:\n  max_bundle_bytes: 2097152\n")
    assert load_settings(project_dir=tmp_path).registry.max_bundle_bytes == 2 << 20
    monkeypatch.setenv("SHIPYARD_REGISTRY__MAX_BUNDLE_BYTES", str(1 << 20))  # wins over the file
    assert load_settings(project_dir=tmp_path).registry.max_bundle_bytes == 1 << 20
    capped = _workspace(tmp_path, "capped")
    try:
        with pytest.raises(InvalidData, match="SHIPYARD_REGISTRY__MAX_BUNDLE_BYTES"):
            ModelRegistry.for_workspace(capped).register("churn", data, actor=OPERATOR)
    finally:
        capped.close()
    assert registry.register("churn", data, actor=OPERATOR).version == 1  # the default cap takes it


def test_symlink_members_are_refused(good_bundle: bytes):
    with pytest.raises(InvalidData, match=r"'plots/link\.png' is a symlink"):
        read_bundle(symlink_to(good_bundle, "/etc/passwd"))


@pytest.mark.parametrize(
    "name", ["../evil.txt", "/etc/cron.d/evil", "plots/../../evil", "..\\evil", "plots//x"]
)
def test_unsafe_member_names_written_raw_are_refused(good_bundle: bytes, name: str):
    data = with_members(good_bundle, [honest(name, b"x")], listed={})
    with pytest.raises(InvalidData, match="unsafe member name"):
        read_bundle(data)


def test_overlapping_members_are_refused(good_bundle: bytes):
    first = honest("card.md", b"# Card\n" * 100)
    second = RawMember("notes.md", first.payload, first.size, first.crc, offset=0)
    data = raw_zip([first, second])
    with pytest.raises(InvalidData, match="overlaps"):
        read_bundle(data)
    content = members(good_bundle)
    again = raw_zip([*(honest(n, d) for n, d in content.items()), second])
    with pytest.raises(InvalidData, match="overlaps"):
        read_bundle(again)


def test_too_many_members_are_counted_before_the_directory_is_parsed(good_bundle: bytes):
    many = raw_zip([honest(f"plots/{i}.png", b"") for i in range(50)])
    with pytest.raises(InvalidData, match="more than 10 members"):
        read_bundle(many, max_members=10)


def test_a_zip_nested_in_the_model_file_is_refused():
    import skops.io as sio

    base = sio.dumps(fitted("logistic", "binary").model)
    content = members(base)
    nested = zip_of({**content, "inner.bin": zip_of({"schema.json": b"{}"})})
    with pytest.raises(IntegrityFailure, match="itself a zip"):
        load_model(nested)


def test_a_blob_swapped_for_a_bomb_is_refused_on_load_unread(
    registry: ModelRegistry, tmp_path: Path, good_bundle: bytes
):
    version = registry.register("churn", good_bundle, actor=OPERATOR)
    path = registry.blobs.local_path(version.bundle_sha256)
    path.chmod(0o644)
    path.write_bytes(declared_bomb(good_bundle))
    with pytest.raises(IntegrityFailure, match="were registered"):
        registry.load("churn:1")


def test_registering_through_a_symlink_is_refused(
    registry: ModelRegistry, tmp_path: Path, good_bundle: bytes
):
    real = tmp_path / "real.zip"
    real.write_bytes(good_bundle)
    link = tmp_path / "link.zip"
    link.symlink_to(real)
    with pytest.raises(InvalidData, match="cannot be opened"):
        registry.register("churn", link, actor=OPERATOR)
    assert registry.register("churn", real, actor=OPERATOR).version == 1


def test_only_the_checked_reader_opens_zips():
    """Every load path (register, load, serve, hot swap, gate) ends in ``CheckedZip``.

    Derived from the source rather than listed: no module but ``registry/archive.py`` imports
    ``zipfile``, and only the registry calls ``read_bundle``.
    """
    src = ROOT / "src" / "shipyard"
    importers, readers = set(), set()
    for path in src.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        relative = path.relative_to(src).as_posix()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import) and any(a.name == "zipfile" for a in node.names):
                importers.add(relative)
            if isinstance(node, ast.ImportFrom) and node.module == "zipfile":
                importers.add(relative)
            if isinstance(node, ast.Name) and node.id == "read_bundle":
                readers.add(relative)
    assert importers == {"registry/archive.py"}
    assert readers == {"registry/reads.py"}  # read_under_limits: under the workspace's caps
