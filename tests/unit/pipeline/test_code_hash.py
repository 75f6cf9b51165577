"""A stage's code hash follows its module's run-time imports and the libraries they use."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest

from shipyard.pipeline.code_hash import (
    ParsedImports,
    _imports,
    _owners,
    _parsed,
    code_closure,
    code_hash,
)

STAGE = """\
from __future__ import annotations

from typing import TYPE_CHECKING

import json
import polars as pl

from shipyard.steps import helper
from shipyard.steps.lazy import REGISTRY

if TYPE_CHECKING:
    from shipyard.typing_only import Hint


def run() -> None:
    from shipyard.inner import deep  # a lazy import still runs with the stage
"""

FILES = {
    "__init__.py": "",
    "stage.py": STAGE,
    "steps/__init__.py": "",
    "steps/helper.py": "import numpy\nfrom . import sibling\n",
    "steps/sibling.py": "VALUE = 1\n",
    "steps/lazy.py": 'REGISTRY = {"csv": "shipyard.plugins.csv:Reader"}\n',
    "plugins/__init__.py": "",
    "plugins/csv.py": "import shipyard_missing_dependency_xyz\n",
    "inner.py": "",
    "typing_only.py": "",
    "unrelated.py": "import pandas\n",
}


@pytest.fixture
def package(tmp_path: Path) -> Path:
    root = tmp_path / "shipyard"
    for name, text in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_the_closure_follows_run_time_imports_only(package: Path) -> None:
    closure = code_closure("shipyard.stage", package_dir=package)
    assert set(closure.modules) == {
        "shipyard",
        "shipyard.stage",
        "shipyard.steps",
        "shipyard.steps.helper",
        "shipyard.steps.sibling",  # relative import
        "shipyard.steps.lazy",
        "shipyard.plugins",
        "shipyard.plugins.csv",  # named by a "module:attr" string, imported later
        "shipyard.inner",  # function-level import
    }  # not typing_only (TYPE_CHECKING), not unrelated; json is the standard library
    assert closure.distributions == {
        "polars": metadata.version("polars"),
        "numpy": metadata.version("numpy"),
        "import:shipyard_missing_dependency_xyz": None,
    }


def test_editing_any_module_of_the_closure_changes_the_hash(package: Path) -> None:
    before = code_closure("shipyard.stage", package_dir=package).digest()
    (package / "unrelated.py").write_text("import pandas\nX = 2\n")
    (package / "typing_only.py").write_text("X = 2\n")
    assert code_closure("shipyard.stage", package_dir=package).digest() == before
    (package / "steps" / "sibling.py").write_text("VALUE = 2\n")
    assert code_closure("shipyard.stage", package_dir=package).digest() != before


def test_a_library_version_is_part_of_the_hash(package: Path) -> None:
    closure = code_closure("shipyard.stage", package_dir=package)
    upgraded = type(closure)(closure.modules, {**closure.distributions, "polars": "999.0"})
    assert upgraded.digest() != closure.digest()


def test_the_real_stages_cover_the_modules_their_hand_kept_lists_missed() -> None:
    training = code_closure("shipyard.pipeline.training")
    for module in ("estimators", "splits", "imbalance", "metrics", "space", "trainer"):
        assert f"shipyard.train.{module}" in training.modules
    assert training.distributions["scikit-learn"] == metadata.version("scikit-learn")
    validate = code_closure("shipyard.pipeline.validate_stage")
    for module in ("data.contract", "data.dtypes", "data.harmonize", "data.combine"):
        assert f"shipyard.{module}" in validate.modules
    assert "shipyard.train.trainer" not in code_closure("shipyard.pipeline.clean_stage").modules


@pytest.mark.parametrize("module", ["json", "no_such_module_xyz"])
def test_a_module_without_source_to_walk_is_refused(module: str) -> None:
    with pytest.raises(ValueError, match="no Python source to hash"):
        code_hash(module)


@pytest.fixture
def fresh_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The parsed-imports file in ``tmp_path``; in-memory caches emptied as in a new process."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for cached in (_parsed, _imports, _owners):
        cached.cache_clear()
    yield tmp_path / "cache" / "shipyard" / f"code-imports-{ParsedImports.FORMAT}.json"
    for cached in (_parsed, _imports, _owners):
        cached.cache_clear()


def test_parsed_imports_are_kept_across_processes_by_content(
    package: Path, fresh_process: Path
) -> None:
    first = code_closure("shipyard.stage", package_dir=package)
    assert fresh_process.is_file()
    entries = json.loads(fresh_process.read_text())
    assert len(entries) == len(first.modules)

    _parsed.cache_clear()  # a new process: the file answers, with the same closure
    _imports.cache_clear()
    again = code_closure("shipyard.stage", package_dir=package)
    assert again == first
    assert json.loads(fresh_process.read_text()) == entries

    # an edited module is parsed again (its bytes are its key), never answered from the file
    (package / "inner.py").write_text("from shipyard import unrelated\n")
    _parsed.cache_clear()
    _imports.cache_clear()
    edited = code_closure("shipyard.stage", package_dir=package)
    assert "shipyard.unrelated" in edited.modules
    assert edited.digest() != first.digest()


def test_an_unreadable_parsed_imports_file_is_ignored(package: Path, fresh_process: Path) -> None:
    fresh_process.parent.mkdir(parents=True)
    fresh_process.write_text("{not json")
    closure = code_closure("shipyard.stage", package_dir=package)
    assert "shipyard.inner" in closure.modules
    assert len(json.loads(fresh_process.read_text())) == len(closure.modules)


def test_the_distributions_map_is_kept_until_an_install_changes_sys_path(
    fresh_process: Path,
) -> None:
    owners = _owners()
    assert metadata.packages_distributions()["polars"] == owners["polars"]
    [kept] = fresh_process.parent.glob(f"code-owners-{ParsedImports.FORMAT}-*.json")
    stored = json.loads(kept.read_text())
    assert stored["owners"] == owners

    # what a new process reads: the kept map, while sys.path's folders are unchanged
    stored["owners"]["polars"] = ["kept-map"]
    kept.write_text(json.dumps(stored))
    _owners.cache_clear()
    assert _owners()["polars"] == ["kept-map"]

    # an install changes a folder's time, so the key: the map is scanned again
    stored["key"] = json.dumps([["elsewhere", 1]])
    kept.write_text(json.dumps(stored))
    _owners.cache_clear()
    assert _owners() == owners


def test_each_sys_path_keeps_its_own_distributions_map(
    fresh_process: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    owners = _owners()
    [first] = fresh_process.parent.glob(f"code-owners-{ParsedImports.FORMAT}-*.json")
    kept = first.read_text()

    # another environment (here: one more, empty, sys.path folder) writes a file of its own
    other = tmp_path / "other-env"
    other.mkdir()
    monkeypatch.setattr(sys, "path", [*sys.path, str(other)])
    _owners.cache_clear()
    assert _owners() == owners
    assert len(list(fresh_process.parent.glob(f"code-owners-{ParsedImports.FORMAT}-*.json"))) == 2
    assert first.read_text() == kept  # the first environment's map is still there to read
