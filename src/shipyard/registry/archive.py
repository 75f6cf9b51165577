"""Zip files as bundles use them: bounded reading that trusts nothing, deterministic writing.

Reading checks before it decompresses: member count, safe and unique member names (the artifact
name grammar of ``store.artifacts.names``, so ``../x``, absolute and backslash names are refused),
no encryption, stored or deflated members only, and the declared uncompressed total against a
limit (``zipfile`` never yields more than a member declares, so the declared sizes bound the
memory a zip bomb can take). Writing is atomic: temp file beside the target, fsync, rename, fsync
of the directory (RELIABILITY.md lesson 5); an fsync error fails the write and nothing is retried.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import uuid
import zipfile
import zlib
from typing import TYPE_CHECKING

from shipyard.core import faults
from shipyard.core.errors import ArtifactNotFound, InvalidData, InvalidName
from shipyard.store.artifacts.names import validate_artifact_name

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_TMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def zip_members(members: Mapping[str, bytes], *, first: str) -> bytes:
    """Return a zip of ``members``: ``first``, then the rest sorted; fixed times, deflated."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in [first, *sorted(n for n in members if n != first)]:
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, members[name])
    return buffer.getvalue()


def write_atomic(path: Path, data: bytes) -> None:
    """Temp file beside ``path`` -> fsync -> rename -> fsync the directory (lesson 5)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(os.open(tmp, _TMP_FLAGS, 0o644), "wb", closefd=True) as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        faults.hit("bundle.after_tmp_write")
        os.replace(tmp, path)
        directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def read_bounded(source: Path | bytes, label: str, max_bytes: int) -> bytes:
    """Return the bytes of ``source`` (a regular file, opened without following a symlink).

    Raises:
        ArtifactNotFound: No file at the path.
        InvalidData: Not a regular file, over ``max_bytes``, or empty.
    """
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        if len(data) > max_bytes:
            raise InvalidData(f"bundle {label} is {len(data)} bytes, over the limit of {max_bytes}")
    else:
        try:
            fd = os.open(source, _READ_FLAGS)
        except FileNotFoundError:
            raise ArtifactNotFound(f"no bundle file at {label}") from None
        except OSError as e:
            raise InvalidData(f"bundle {label} cannot be opened: {e.strerror}") from e
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > max_bytes:
            os.close(fd)
            if not stat.S_ISREG(info.st_mode):
                raise InvalidData(f"bundle {label} is not a regular file")
            raise InvalidData(
                f"bundle {label} is {info.st_size} bytes, over the limit of {max_bytes}"
            )
        os.set_blocking(fd, True)
        with open(fd, "rb", closefd=True) as stream:
            data = stream.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise InvalidData(f"bundle {label} grew past the limit of {max_bytes} bytes while read")
    if not data:
        raise InvalidData(
            f"bundle {label} is empty (zero bytes); it was truncated or never written"
        )
    return data


def read_members(
    data: bytes, label: str, max_members: int, max_uncompressed: int
) -> dict[str, bytes]:
    """Return every member of the zip ``data`` after checking names, count and sizes.

    Raises:
        InvalidData: Not a zip (or truncated), too many members, an unsafe or repeated name,
            an encrypted member or unknown compression, or more than ``max_uncompressed``
            bytes once expanded (a zip bomb).
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as e:
        raise InvalidData(
            f"bundle {label} is not a valid zip file ({e}); it may be truncated or not a bundle"
        ) from e
    with archive:
        if len(infos) > max_members:
            raise InvalidData(
                f"bundle {label} has {len(infos)} members, over the limit of {max_members}"
            )
        seen: set[str] = set()
        for info in infos:
            _check_member_info(info, label, seen)
        total = sum(info.file_size for info in infos)
        if total > max_uncompressed:
            raise InvalidData(
                f"bundle {label} would expand to {total} bytes, over the limit of "
                f"{max_uncompressed} (a zip bomb, or raise max_uncompressed); nothing was loaded"
            )
        members = {}
        for info in infos:
            try:
                with archive.open(info) as stream:
                    content = stream.read(info.file_size + 1)
            except (
                zipfile.BadZipFile,
                zlib.error,
                OSError,
                EOFError,
                ValueError,
                RuntimeError,
            ) as e:
                raise InvalidData(
                    f"bundle {label}: member {info.filename!r} is corrupt or truncated ({e})"
                ) from e
            if len(content) != info.file_size:
                raise InvalidData(f"bundle {label}: member {info.filename!r} has the wrong size")
            members[info.filename] = content
    return members


def _check_member_info(info: zipfile.ZipInfo, label: str, seen: set[str]) -> None:
    name = info.filename
    try:
        validate_artifact_name(name)
    except InvalidName as e:
        raise InvalidData(f"bundle {label} has an unsafe member name: {e}") from e
    if name in seen:
        raise InvalidData(f"bundle {label} lists member {name!r} twice; nothing was loaded")
    seen.add(name)
    if info.flag_bits & 0x1:
        raise InvalidData(f"bundle {label}: member {name!r} is encrypted")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise InvalidData(f"bundle {label}: member {name!r} uses an unsupported compression")
