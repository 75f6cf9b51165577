"""A stage's code hash, derived from what its module imports rather than from a hand-kept list.

Issue 15: each stage used to name the modules of its ``code_hash()`` by hand, and the lists fell
behind the code (training's omitted ``train/splits.py``, validation's ``data/contract.py``), so
editing a helper, or upgrading scikit-learn, made ``shipyard run`` silently reuse the old output.
Here the hash covers the *closure* of a stage's module: every ``shipyard.*`` module reachable
through its ``import``/``from`` statements, found by reading the source with ``ast`` (nothing is
imported), plus the installed version of each third-party distribution imported along the way.

What counts as an import:

- module-level and function-level (lazy) imports alike, since both run when the stage runs;
- not those under ``if TYPE_CHECKING:``, which never run;
- the ``__init__`` of every package above an imported module (importing runs them);
- a string constant ``"shipyard.x.y:Name"``: that is how lazy registries (the connectors by
  format) name a module they import later.

A stage defined outside ``shipyard`` (a user's own step) has its own top-level package walked
the same way. Dynamic imports built from other strings are not seen; a stage whose work
depends on such a module should import it. The result is cached per process, like the modules
the interpreter has already loaded: a run uses the code it started with. What it parses is also
kept across processes, in the user's cache folder (``ParsedImports``, ``_owners``), keyed so that
an edited module or a changed installation is read again.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import os
import re
import sys
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path

ROOT_PACKAGE = "shipyard"
_PACKAGE_DIR = Path(__file__).resolve().parents[1]  # the ``shipyard`` folder this runs from
_LAZY_REFERENCE = re.compile(r"shipyard(?:\.\w+)+:\w+")


@dataclass(frozen=True)
class CodeClosure:
    """What a module's behaviour depends on: its ``shipyard`` modules and third-party versions.

    ``modules`` maps each module name to its source file; ``distributions`` maps each
    third-party distribution to its installed version (``None``: imported but not installed,
    e.g. an optional booster, so installing it later changes the hash too).
    """

    modules: dict[str, Path]
    distributions: dict[str, str | None]

    def digest(self) -> str:
        """Return a SHA-256 over every module's name and source bytes and every version."""
        digest = hashlib.sha256()
        for name in sorted(self.modules):
            digest.update(f"module {name}\n".encode())
            digest.update(self.modules[name].read_bytes())
        for dist in sorted(self.distributions):
            digest.update(f"\ndistribution {dist}=={self.distributions[dist]}".encode())
        return digest.hexdigest()


@cache
def code_hash(module: str) -> str:
    """Return the hash of ``module``'s code closure (see the module docstring).

    Args:
        module: A module name, typically a stage class's ``__module__``.

    Raises:
        ValueError: ``module`` has no Python source file to read.
    """
    return code_closure(module).digest()


def code_closure(module: str, *, package_dir: Path = _PACKAGE_DIR) -> CodeClosure:
    """Return the closure of ``module`` over ``shipyard`` (rooted at ``package_dir``).

    A user's own stage lives outside ``shipyard``: its top-level package (or lone module) is
    then walked like ``shipyard``, its modules hashed by source, so editing a helper of the
    user's step reruns it too.

    Args:
        module: A module name, typically a stage class's ``__module__``.
        package_dir: The ``shipyard`` folder to read (default: the one running); tests pass a
            copy.

    Raises:
        ValueError: ``module`` has no Python source file to read.
    """
    roots = {ROOT_PACKAGE: package_dir}
    top = module.split(".")[0]
    if top not in (ROOT_PACKAGE, *sys.stdlib_module_names) and (location := _location(top)):
        roots[top] = location
    if _source(roots, module) is None:
        raise ValueError(f"{module!r} has no Python source to hash: pass a stage's module")
    seen: dict[str, Path] = {}
    third_party: set[str] = set()
    pending = [module]
    while pending:
        name = pending.pop()
        path = _source(roots, name)
        if name in seen or path is None:
            continue
        seen[name] = path
        for imported in _imports(path, name):
            if imported.split(".")[0] in roots:
                pending.extend(_with_parents(imported))
            elif imported.split(".")[0] not in sys.stdlib_module_names:
                third_party.add(imported.split(".")[0])
        pending.extend(_with_parents(name))
    _parsed().save()
    return CodeClosure(seen, dict(_versions(frozenset(third_party))))


def _location(top: str) -> Path | None:
    """Return where top-level module ``top`` lives (its folder, or its file), without importing."""
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(spec.origin) if spec.origin and spec.origin.endswith(".py") else None


def _with_parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _source(roots: dict[str, Path], module: str) -> Path | None:
    """Return the file of ``top.a.b`` (``a/b.py`` or ``a/b/__init__.py``), if one exists."""
    parts = module.split(".")
    root = roots.get(parts[0])
    if root is None or not all(p.isidentifier() for p in parts):
        return None
    if root.is_file():  # a lone module
        return root if len(parts) == 1 else None
    base = root.joinpath(*parts[1:])
    for candidate in (base / "__init__.py", base.with_suffix(".py") if parts[1:] else None):
        if candidate is not None and candidate.is_file():
            return candidate
    return None


@cache
def _imports(path: Path, module: str) -> frozenset[str]:
    """Return the modules ``path`` imports at run time (and ``module:attr`` strings name).

    A ``from shipyard.a import b`` yields both ``shipyard.a`` and ``shipyard.a.b``; the latter
    is dropped by the walk when ``b`` is a name rather than a module. Parsing every module of a
    closure cost a data-only ``shipyard run`` about 0.2 CPU-s (issue 17), so the answer is kept
    in ``ParsedImports``, keyed by what it depends on: the module's name, whether the file is a
    package's ``__init__`` and the file's bytes.
    """
    source = path.read_bytes()
    key = _parsed().key(module, path.name == "__init__.py", source)
    if (known := _parsed().get(key)) is not None:
        return known
    found = _parse_imports(source, path, module)
    _parsed().put(key, found)
    return found


def _parse_imports(source: bytes, path: Path, module: str) -> frozenset[str]:
    tree = ast.parse(source, filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, package)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and _LAZY_REFERENCE.fullmatch(node.value)
        ):
            names.add(node.value.partition(":")[0])
    return frozenset(n for n in names if n)


class ParsedImports:
    """What ``_imports`` found in each source seen before, in a JSON file kept across processes.

    The file lives in the user's cache folder (``$XDG_CACHE_HOME`` or ``~/.cache``,
    ``shipyard/code-imports-<format>.json``); keys are SHA-256 of the module's name, whether
    it is an ``__init__``, and its bytes, so an edited module is parsed again and a stale entry
    cannot be used. A cache that cannot be read or written is ignored: the hash is the same.
    """

    FORMAT = 1

    def __init__(self, path: Path) -> None:
        self.path = path
        self._entries: dict[str, list[str]] = {}
        self._dirty = False
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(loaded, dict):
                self._entries = {
                    k: v for k, v in loaded.items() if isinstance(v, list) and len(k) == 64
                }
        except (OSError, ValueError):
            pass

    @staticmethod
    def key(module: str, package_init: bool, source: bytes) -> str:
        """The entry's key: what the parsed imports depend on."""
        head = f"{module}\0{int(package_init)}\0".encode()
        return hashlib.sha256(head + source).hexdigest()

    def get(self, key: str) -> frozenset[str] | None:
        """The imports found for ``key`` before, or None."""
        found = self._entries.get(key)
        return None if found is None else frozenset(found)

    def put(self, key: str, imports: frozenset[str]) -> None:
        """Remember ``imports`` for ``key`` (written by ``save``)."""
        self._entries[key] = sorted(imports)
        self._dirty = True

    def save(self) -> None:
        """Write the entries if any is new (atomically; errors are ignored)."""
        if not self._dirty:
            return
        if _write_atomically(self.path, json.dumps(self._entries)):
            self._dirty = False


def _cache_dir() -> Path:
    """The user's cache folder for Shipyard (``$XDG_CACHE_HOME/shipyard``, ``~/.cache/...``)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "shipyard")


def _write_atomically(path: Path, text: str) -> bool:
    """Write ``text`` to ``path`` through a temporary file; False (ignored) when it fails."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temp.write_text(text, encoding="utf-8")
        os.replace(temp, path)
    except OSError:
        return False
    return True


@cache
def _parsed() -> ParsedImports:
    return ParsedImports(_cache_dir() / f"code-imports-{ParsedImports.FORMAT}.json")


def _absolute(node: ast.ImportFrom, package: str) -> str:
    if not node.level:
        return node.module or ""
    parts = package.split(".")
    base = ".".join(parts[: len(parts) - node.level + 1])
    return f"{base}.{node.module}" if node.module else base


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Return every node of ``tree`` except those under ``if TYPE_CHECKING:`` (never run)."""
    found: list[ast.AST] = []
    pending: list[ast.AST] = [tree]
    while pending:
        node = pending.pop()
        found.append(node)
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            pending.extend(node.orelse)
            continue
        pending.extend(ast.iter_child_nodes(node))
    return found


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


@cache
def _owners() -> dict[str, list[str]]:
    """Import name → distributions.

    Scanning every installed distribution cost about 0.15 CPU-s a process (issue 17), so the
    map is kept in the cache folder beside ``ParsedImports``, keyed by the modification times
    of the ``sys.path`` entries: installing, upgrading or removing a distribution adds or
    removes its ``.dist-info`` folder, which changes its folder's time. Each ``sys.path`` (each
    virtual environment) has its own file: with one file shared, two environments used in turn
    (two checkouts, a tool's own venv) overwrote each other's map and every run rescanned.
    """
    key = json.dumps([[entry, _mtime_ns(entry)] for entry in sys.path])
    paths = hashlib.sha256(json.dumps(sys.path).encode()).hexdigest()[:16]
    path = _cache_dir() / f"code-owners-{ParsedImports.FORMAT}-{paths}.json"
    try:
        kept = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(kept, dict) and kept.get("key") == key:
            return {str(k): list(v) for k, v in kept["owners"].items()}
    except (OSError, ValueError, KeyError, AttributeError, TypeError):
        pass
    owners = dict(metadata.packages_distributions())
    _write_atomically(path, json.dumps({"key": key, "owners": owners}))
    return owners


def _mtime_ns(entry: str) -> int | None:
    try:
        return os.stat(entry or ".").st_mtime_ns
    except OSError:
        return None


@cache
def _versions(tops: frozenset[str]) -> list[tuple[str, str | None]]:
    """Map import names to installed distributions and their versions, sorted."""
    owners = _owners()
    found: dict[str, str | None] = {}
    for top in tops:
        dists = owners.get(top)
        if not dists:
            found[f"import:{top}"] = None  # not installed: its arrival must change the hash
            continue
        for dist in dists:
            try:
                found[dist] = metadata.version(dist)
            except metadata.PackageNotFoundError:
                found[dist] = None
    return sorted(found.items())
