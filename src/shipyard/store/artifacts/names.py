r"""Logical artifact names, and the one safe way to turn one into a file path.

Artifact keys are not paths (RELIABILITY.md lesson 1). MLflow has had some twenty path-traversal
CVEs, most of them a bypass of the previous fix: ``..\``, ``%2e%2e``, double encoding, ``;``,
``#``, ``?``, ``file:``, fullwidth dots. Shipyard therefore *refuses* rather than *rewrites*:

* ``validate_artifact_name`` accepts a small, explicit grammar: segments of letters, digits and
  ``._-+=@ `` (no leading or trailing space, no trailing dot) separated by single ``/``. Anything
  else is an ``InvalidName`` that says what was wrong. A name is never decoded, unquoted or
  normalized into something else, so two spellings can never reach the same file. In
  particular ``%`` is refused outright instead of being decoded: whatever decodes it later
  (once, twice, ...) can then never produce ``../``.
* ``safe_destination`` is the only place a name meets the filesystem. It validates the name,
  resolves the joined path with ``os.path.realpath``, checks containment with
  ``os.path.commonpath`` (never with a string prefix, which ``root_evil`` would pass) and refuses
  a symlink anywhere between the root and the destination.

Blobs themselves are stored by digest (see ``base``); these names live in the metadata store.
"""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

from shipyard.core.errors import InvalidName

MAX_NAME_LENGTH = 1024
MAX_SEGMENT_LENGTH = 255
_EXTRA_SEGMENT_CHARS = frozenset("._-+=@ ")
_ALLOWED = "letters, digits, '._-+=@ ' inside segments and '/' between segments"
_URL_CHARS = {";": "a URL parameter", "#": "a URL fragment", "?": "a URL query"}


def _refuse(name: object, problem: str) -> InvalidName:
    shown = name if not isinstance(name, str) or len(name) <= 80 else name[:77] + "..."
    return InvalidName(f"invalid artifact name {shown!r}: {problem}; allowed are {_ALLOWED}")


def _check_characters(name: str) -> None:
    for char in name:
        if unicodedata.category(char) == "Cc":
            raise _refuse(name, f"it contains the control character U+{ord(char):04X}")
    if unicodedata.normalize("NFKC", name) != name:
        changed = next((c for c in name if unicodedata.normalize("NFKC", c) != c), None)
        which = f"{changed!r} (U+{ord(changed):04X}), which" if changed else "a sequence that"
        raise _refuse(
            name,
            f"it contains {which} Unicode NFKC normalization changes (fullwidth, compatibility "
            "or decomposed characters); use the plain form",
        )
    if "%" in name:
        raise _refuse(
            name, "it contains '%'; percent-encoding is never decoded and is refused outright"
        )
    if "\\" in name:
        raise _refuse(name, "it contains a backslash; use '/' as the only separator")
    if ":" in name:
        raise _refuse(name, "it contains ':' (drive letters such as 'C:' and URL schemes)")
    for char, meaning in _URL_CHARS.items():
        if char in name:
            raise _refuse(name, f"it contains {char!r}, which starts {meaning}")


def _check_segment(name: str, segment: str) -> None:
    if not segment:
        raise _refuse(name, "it has an empty segment ('a//b' or a trailing '/')")
    if segment in {".", ".."}:
        raise _refuse(name, f"it has a {segment!r} segment; names may not navigate directories")
    if len(segment) > MAX_SEGMENT_LENGTH:
        raise _refuse(
            name, f"a segment is {len(segment)} characters long; the limit is {MAX_SEGMENT_LENGTH}"
        )
    if segment[-1] in ". ":
        raise _refuse(
            name,
            f"segment {segment!r} ends with a dot or space, which some filesystems strip "
            "(so 'a.' and 'a' would be the same file)",
        )
    if segment[0] == " ":
        raise _refuse(name, f"segment {segment!r} starts with a space")
    for char in segment:
        if not (char.isalnum() or char in _EXTRA_SEGMENT_CHARS):
            raise _refuse(name, f"it contains the character {char!r} (U+{ord(char):04X})")


def validate_artifact_name(name: str) -> str:
    """Check a logical artifact name and return it.

    Validation refuses instead of rewriting, so the returned name is the input itself; callers
    should store and compare the returned value.

    Args:
        name: A POSIX-style relative name such as ``"model/model.skops"`` or ``"plots/roc.png"``.

    Returns:
        The validated name.

    Raises:
        InvalidName: When ``name`` is not a string, is empty, longer than 1024 characters, absolute,
            starts with ``~``, has an empty, ``.`` or ``..`` segment, a segment longer than 255
            characters or ending in a dot or space, or contains a control character, ``%``, a
            backslash, ``:``, ``;``, ``#``, ``?``, a character that NFKC normalization changes
            (fullwidth dots and slashes) or one that is not a letter, digit or ``._-+=@ /``.
    """
    if not isinstance(name, str):
        raise _refuse(name, f"it must be a string, not {type(name).__name__}")
    if not name:
        raise _refuse(name, "it must not be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise _refuse(name, f"it is {len(name)} characters long; the limit is {MAX_NAME_LENGTH}")
    _check_characters(name)
    if name.startswith("/"):
        raise _refuse(name, "it is an absolute path; give a path relative to the artifact root")
    if name.startswith("~"):
        raise _refuse(name, "it starts with '~', which shells expand to a home directory")
    for segment in name.split("/"):
        _check_segment(name, segment)
    return name


def is_within(root: str | os.PathLike[str], path: str | os.PathLike[str]) -> bool:
    """Tell whether ``path`` is ``root`` or lies under it, comparing whole path components.

    Both paths are resolved with ``os.path.realpath`` first. Unlike a string-prefix test,
    ``/data/root_evil/x`` is *not* within ``/data/root``.
    """
    real_root = os.path.realpath(root)
    real_path = os.path.realpath(path)
    try:
        return os.path.commonpath([real_root, real_path]) == real_root
    except ValueError:  # different drives, or one relative and one absolute
        return False


def safe_destination(root: Path, name: str) -> Path:
    """Map a logical artifact name to a file path under ``root``, or refuse.

    The destination need not exist. Existing components between ``root`` and the destination
    must not be symlinks (``root`` itself may be one). The check is made at call time; a
    directory that an attacker can write to concurrently is out of scope.

    Args:
        root: The directory artifacts are materialized under.
        name: The logical artifact name.

    Returns:
        The resolved absolute destination path, inside ``realpath(root)``.

    Raises:
        InvalidName: When the name is invalid (see ``validate_artifact_name``), a component is a
            symlink, or the resolved destination is not inside ``root``.
    """
    clean = validate_artifact_name(name)
    real_root = os.path.realpath(root)
    current = real_root
    for segment in clean.split("/"):
        current = os.path.join(current, segment)
        if os.path.islink(current):
            raise _refuse(name, f"{current!r} is a symlink; artifacts never follow symlinks")
        if not os.path.lexists(current):
            break
    destination = os.path.realpath(os.path.join(real_root, clean))
    if not is_within(real_root, destination):
        raise _refuse(name, f"it resolves to {destination!r}, outside the root {real_root!r}")
    return Path(destination)
