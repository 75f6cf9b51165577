"""The one parser of ``shipyard.yaml``: YAML that remembers the line of every value.

Both readers of the project file go through ``load_yaml``: the settings (``core.settings``, the
``workspace:``, ``tracking:``, ``cost:`` and ``registry:`` sections) and the pipeline's
``load_project`` (every other section). The file is parsed once per read: PyYAML composes the
node tree, which keeps every node's start position, and the Python values are constructed from
that same tree. ``YamlDocument.line_of`` walks the tree along a validation error's path
(``("sources", "orders", "csv", "delimiter")``) to the deepest node that exists, so a message
can say ``shipyard.yaml:14`` whichever reader found the problem.
"""

from __future__ import annotations

import copy
import functools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shipyard.core.errors import InvalidProjectFile

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    import yaml
    from pydantic import ValidationError

MAX_PROJECT_FILE_BYTES = 1_000_000
DEFAULT_PROJECT_NAME = "project"
PROJECT_NAME_PATTERN = r"^[A-Za-z0-9_.-]+$"
MAX_PROJECT_NAME_LENGTH = 100


@dataclass(frozen=True)
class YamlDocument:
    """A parsed YAML mapping and the node tree that knows its lines."""

    path: Path
    data: dict[str, Any]
    root: yaml.Node | None

    def line_of(self, location: Sequence[str | int]) -> int:
        """Return the 1-based line of the deepest node on ``location`` that exists."""
        node = self.root
        line = node.start_mark.line + 1 if node is not None else 1
        for part in location:
            child = _child(node, part)
            if child is None:
                break
            node = child
            line = child.start_mark.line + 1
        return line

    def error(
        self, error: ValidationError, *, section: Sequence[str | int] = ()
    ) -> InvalidProjectFile:
        """Turn a pydantic error into one message naming file, line, field and expectation."""
        problems = []
        for item in error.errors()[:10]:
            location = [*section, *item["loc"]]
            field = ".".join(str(p) for p in location) or "(top level)"
            problems.append(f"{self.path.name}:{self.line_of(location)}: {field}: {_message(item)}")
        more = len(error.errors()) - 10
        suffix = f"\n(and {more} more)" if more > 0 else ""
        return InvalidProjectFile("\n".join(problems) + suffix)


def load_yaml(path: Path) -> YamlDocument:
    """Parse ``path`` as a YAML mapping.

    Raises:
        InvalidProjectFile: Missing, too large, not YAML, or not a mapping at the top.
    """
    import yaml  # here, not at import: a project without the file never needs it (issue #17)

    if not path.is_file():
        raise InvalidProjectFile(f"{path} not found; `shipyard init` writes a starter file")
    if path.stat().st_size > MAX_PROJECT_FILE_BYTES:
        raise InvalidProjectFile(f"{path} is larger than {MAX_PROJECT_FILE_BYTES} bytes")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise InvalidProjectFile(f"{path} is not UTF-8 text: {e}") from e
    try:
        root, data = _parse(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e)
        raise InvalidProjectFile(f"{path.name}{where}: not valid YAML: {problem}") from e
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InvalidProjectFile(f"{path.name}:1: expected a mapping of sections at the top level")
    return YamlDocument(path, data, root)


def read_project_name(path: Path) -> str:
    """Return ``name:`` of the project file at ``path``, checked as the full reader checks it.

    Every command needs the project's name (role bindings are per project) but most need
    nothing else of the file: reading the one field spares them importing the pipeline's
    whole schema (data, training and monitoring specs) before they start (issue #17). The
    command that uses the other sections validates them when it loads the project.

    Raises:
        InvalidProjectFile: The file is unreadable, or its name breaks the naming rule.
    """
    document = load_yaml(path)
    name = document.data.get("name", DEFAULT_PROJECT_NAME)
    if (
        not isinstance(name, str)
        or not 1 <= len(name) <= MAX_PROJECT_NAME_LENGTH
        or re.fullmatch(PROJECT_NAME_PATTERN, name) is None
    ):
        raise InvalidProjectFile(
            f"{path.name}:{document.line_of(('name',))}: name: expected 1 to "
            f"{MAX_PROJECT_NAME_LENGTH} letters, digits, '_', '.' or '-' (got {name!r})"
        )
    return name


def _parse(text: str) -> tuple[yaml.Node | None, Any]:
    """The node tree and the values of ``text``; a text seen before is not parsed again.

    One command reads the file several times (the project's name, the settings from each
    entry point, the pipeline's project): about 4 ms a parse (issue 17). The values are
    copied for each reader, so a caller that changes its mapping changes no one else's; the
    node tree is only read.
    """
    root, data = _parse_text(text)
    return root, copy.deepcopy(data)


@functools.lru_cache(maxsize=8)
def _parse_text(text: str) -> tuple[yaml.Node | None, Any]:
    """Compose the node tree and construct the values from it: one parse, lines kept."""
    import yaml

    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        data = None if root is None else loader.construct_document(root)
    finally:
        loader.dispose()
    return root, data


def _child(node: yaml.Node | None, part: str | int) -> yaml.Node | None:
    import yaml  # already loaded: a node exists only once a file was parsed

    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if str(key.value) == str(part):
                return value  # type: ignore[no-any-return]
        return None
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        return node.value[part]  # type: ignore[no-any-return]
    return None


def _message(item: Any) -> str:
    kind = item.get("type", "")
    if kind == "extra_forbidden":
        return "unknown field (check the spelling; see docs/data.md for the allowed fields)"
    if kind == "missing":
        return "required field is missing"
    text = str(item.get("msg", "invalid value"))
    value = item.get("input")
    if value is not None and not isinstance(value, dict | list):
        text += f" (got {value!r})"
    return text
