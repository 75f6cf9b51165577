"""Zip files as bundles use them: one checked reader that trusts nothing, deterministic writing.

``CheckedZip`` is the only way Shipyard reads a zip it did not just write (the bundle, and the
skops model file nested in it). It checks the directory before it decompresses anything -- member
count (counted before ``zipfile`` parses the directory), names (the artifact name grammar of
``store.artifacts.names``: ``../x``, absolute and backslash names are refused), duplicates,
symlinks and other special files, encryption, compression method, overlapping members,
per-member compression ratio and the declared total against a cap -- and then streams members
in bounded chunks, refusing one that expands past its declared size (headers can lie). A
hostile file is thus refused in milliseconds with memory of the order of its own size.

Writing is atomic: temp file beside the target, fsync, rename, fsync of the directory
(RELIABILITY.md lesson 5); an fsync error fails the write and nothing is retried.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import stat
import struct
import uuid
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shipyard.core import faults
from shipyard.core.errors import ArtifactNotFound, InvalidData, InvalidName
from shipyard.store.artifacts.names import validate_artifact_name

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_TMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
#: Deflate tops out near 1032:1; models, JSON and Parquet stay far below 100:1.
DEFAULT_MAX_RATIO = 200.0
RATIO_FLOOR_BYTES = 1 << 20
CHUNK_BYTES = 1 << 20
# Zip record signatures and fixed sizes (PKWARE APPNOTE.TXT 4.3.7, 4.3.12, 4.3.14-16).
_LOCAL_HEADER_SIZE = 30
_CD_ENTRY, _CD_HEADER_SIZE = b"PK\x01\x02", 46
_EOCD, _EOCD_SIZE = b"PK\x05\x06", 22
_ZIP64_LOCATOR, _ZIP64_LOCATOR_SIZE = b"PK\x06\x07", 20
_ZIP64_EOCD, _ZIP64_EOCD_SIZE = b"PK\x06\x06", 56


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
            raise InvalidData(
                f"bundle {label} is {len(data)} bytes, over the limit of {max_bytes} "
                "(raise SHIPYARD_REGISTRY__MAX_BUNDLE_BYTES for larger bundles)"
            )
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
                f"bundle {label} is {info.st_size} bytes, over the limit of {max_bytes} "
                "(raise SHIPYARD_REGISTRY__MAX_BUNDLE_BYTES for larger bundles)"
            )
        os.set_blocking(fd, True)
        # Ask for what fstat saw plus one byte (a file growing meanwhile): ``read(n)`` allocates
        # n bytes up front, so asking for ``max_bytes`` would cost the cap for every bundle.
        with open(fd, "rb", closefd=True) as stream:
            data = stream.read(info.st_size + 1)
        if len(data) > info.st_size or len(data) > max_bytes:
            raise InvalidData(f"bundle {label} grew past the limit of {max_bytes} bytes while read")
    if not data:
        raise InvalidData(
            f"bundle {label} is empty (zero bytes); it was truncated or never written"
        )
    return data


@dataclass(frozen=True)
class ZipLimits:
    """What a zip may hold before Shipyard reads any of it.

    Attributes:
        max_members: Most members (counted in the central directory before it is parsed).
        max_total_bytes: Most bytes all members together may expand to.
        max_ratio: Largest expansion ratio (uncompressed / compressed) of one member...
        ratio_floor_bytes: ...once it expands to more than this (small members vary too much).
    """

    max_members: int
    max_total_bytes: int
    max_ratio: float = DEFAULT_MAX_RATIO
    ratio_floor_bytes: int = RATIO_FLOOR_BYTES


class CheckedZip(Mapping[str, bytes]):
    """A zip whose directory passed every check; members are read only by bounded streaming.

    Checks at construction, before a single member is decompressed: the member count (from the
    central directory, before ``zipfile`` parses it), safe and unique names, no symlinks or other
    special files, no encryption, stored or deflated only, compressed data inside the file and
    not overlapping another member (the overlapping-entries bomb), each member's compression
    ratio, and the declared total against ``max_total_bytes``.

    Reading (``stream``, or ``zip[name]``) never trusts the declared size: the member is
    decompressed in chunks with room for one byte more than it declares, so a member that
    expands past its declaration is refused at that byte, and one that ends short or fails its
    CRC is refused as corrupt. The declared sizes were summed against the cap, so no member,
    and no pass over all of them, yields more than ``max_total_bytes``.
    """

    def __init__(self, data: bytes, label: str, limits: ZipLimits) -> None:
        self.label = label
        self.limits = limits
        _check_entry_count(data, label, limits.max_members)
        try:
            self._archive = zipfile.ZipFile(io.BytesIO(data))
            infos = self._archive.infolist()
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as e:
            raise InvalidData(
                f"{label} is not a valid zip file ({e}); it may be truncated or not a bundle"
            ) from e
        if len(infos) > limits.max_members:
            raise InvalidData(
                f"{label} has {len(infos)} members, over the limit of {limits.max_members}"
            )
        seen: set[str] = set()
        for info in infos:
            _check_member_info(info, label, seen)
        self.total_bytes = sum(info.file_size for info in infos)
        if self.total_bytes > limits.max_total_bytes:
            raise InvalidData(
                f"{label} would expand to {self.total_bytes} bytes, over the limit of "
                f"{limits.max_total_bytes} (a zip bomb, or a bundle larger than this workspace "
                "accepts: raise SHIPYARD_REGISTRY__MAX_BUNDLE_BYTES); nothing was loaded"
            )
        for info in infos:
            _check_ratio(info, label, limits)
        _check_layout(infos, label, getattr(self._archive, "start_dir", len(data)))
        self._infos = {info.filename: info for info in infos}

    def __getitem__(self, name: str) -> bytes:
        """Return a member's bytes, read through ``stream`` (so bounded and CRC-checked)."""
        if name not in self._infos:
            raise KeyError(name)
        return b"".join(self.stream(name))

    def __iter__(self) -> Iterator[str]:
        """Member names, in the order of the central directory."""
        return iter(self._infos)

    def __len__(self) -> int:
        """How many members there are."""
        return len(self._infos)

    def size(self, name: str) -> int:
        """The declared (and, once streamed, verified) uncompressed size of a member."""
        return self._infos[name].file_size

    def stream(self, name: str, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
        """Yield a member's bytes in chunks of at most ``chunk_bytes``.

        Raises:
            InvalidData: The member expands past its declared size, ends short of it, or is
                corrupt (bad deflate data, wrong CRC).
        """
        info = self._infos[name]
        # Room for one byte past the declaration: zipfile would otherwise stop there silently.
        probe = copy.copy(info)
        probe.file_size = info.file_size + 1
        del probe.CRC  # checked below, once the size is known to be honest
        seen, crc = 0, 0
        try:
            with self._archive.open(probe) as stream:
                while chunk := stream.read(chunk_bytes):
                    seen += len(chunk)
                    if seen > info.file_size:
                        raise InvalidData(
                            f"{self.label}: member {name!r} expands past the {info.file_size} "
                            "bytes its header declares (a zip bomb that lies about its size); "
                            "nothing was loaded"
                        )
                    crc = zlib.crc32(chunk, crc)
                    yield chunk
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, RuntimeError) as e:
            raise InvalidData(
                f"{self.label}: member {name!r} is corrupt or truncated ({e}); nothing was loaded"
            ) from e
        if seen != info.file_size:
            raise InvalidData(
                f"{self.label}: member {name!r} holds {seen} bytes but declares "
                f"{info.file_size}; it is corrupt and nothing was loaded"
            )
        if crc != info.CRC:
            raise InvalidData(
                f"{self.label}: member {name!r} fails its CRC-32 check; it is corrupt and "
                "nothing was loaded"
            )

    def close(self) -> None:
        """Release the zip (the bytes stay with whoever passed them in)."""
        self._archive.close()


def _check_entry_count(data: bytes, label: str, max_members: int) -> None:
    """Count central-directory entries before ``zipfile`` builds an object for each.

    ``zipfile`` parses the whole central directory (about half a kilobyte of memory per entry,
    whatever count the end record claims) before anything can be checked, so a file made of
    millions of 46-byte entries would cost gigabytes. Walking the entries' fixed headers costs
    nothing and stops at ``max_members + 1``. Anything malformed is left to ``zipfile``.
    """
    end = data.rfind(_EOCD, max(0, len(data) - _EOCD_SIZE - 0xFFFF))
    if end < 0 or end + _EOCD_SIZE > len(data):
        return
    size_cd = struct.unpack_from("<L", data, end + 12)[0]
    locator = end - _ZIP64_LOCATOR_SIZE
    if locator >= _ZIP64_EOCD_SIZE and data[locator : locator + 4] == _ZIP64_LOCATOR:
        end = locator - _ZIP64_EOCD_SIZE
        if data[end : end + 4] != _ZIP64_EOCD:
            return
        size_cd = struct.unpack_from("<Q", data, end + 40)[0]
    position, count = end - size_cd, 0
    if position < 0:
        return
    while position + _CD_HEADER_SIZE <= end and data[position : position + 4] == _CD_ENTRY:
        count += 1
        if count > max_members:
            raise InvalidData(
                f"{label} has more than {max_members} members (the limit); nothing was read"
            )
        name, extra, comment = struct.unpack_from("<3H", data, position + 28)
        position += _CD_HEADER_SIZE + name + extra + comment


def _check_member_info(info: zipfile.ZipInfo, label: str, seen: set[str]) -> None:
    name = info.filename
    try:
        validate_artifact_name(name)
    except InvalidName as e:
        raise InvalidData(f"{label} has an unsafe member name: {e}") from e
    if name in seen:
        raise InvalidData(f"{label} lists member {name!r} twice; nothing was loaded")
    seen.add(name)
    mode = info.external_attr >> 16
    if stat.S_IFMT(mode) and not stat.S_ISREG(mode):
        kind = "a symlink" if stat.S_ISLNK(mode) else "not a regular file"
        raise InvalidData(
            f"{label}: member {name!r} is {kind} (mode {mode:o}); bundles hold regular files "
            "only and nothing was loaded"
        )
    if info.flag_bits & 0x1:
        raise InvalidData(f"{label}: member {name!r} is encrypted")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise InvalidData(f"{label}: member {name!r} uses an unsupported compression")
    if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
        raise InvalidData(
            f"{label}: stored member {name!r} declares {info.file_size} bytes but holds "
            f"{info.compress_size}; it is corrupt and nothing was loaded"
        )


def _check_ratio(info: zipfile.ZipInfo, label: str, limits: ZipLimits) -> None:
    expanded, compressed = info.file_size, max(info.compress_size, 1)
    if expanded > limits.ratio_floor_bytes and expanded > limits.max_ratio * compressed:
        raise InvalidData(
            f"{label}: member {info.filename!r} would expand {info.compress_size} bytes to "
            f"{info.file_size}, a ratio over {limits.max_ratio:g} (a zip bomb; real models do "
            "not compress that well); nothing was loaded"
        )


def _check_layout(infos: list[zipfile.ZipInfo], label: str, directory_start: int) -> None:
    """Refuse members whose data overlaps another's or runs into the central directory.

    Overlapping entries let many members share one compressed kernel, the "better zip bomb"
    (David Fifield, 2019): each member looks modest, together they expand without bound.
    """
    ordered = sorted(infos, key=lambda i: i.header_offset)
    for info, following in zip(ordered, [*ordered[1:], None], strict=True):
        raw = info.orig_filename
        encoded = raw.encode("utf-8") if info.flag_bits & 0x800 else raw
        end = info.header_offset + _LOCAL_HEADER_SIZE + len(encoded) + info.compress_size
        limit = directory_start if following is None else following.header_offset
        if end > limit:
            raise InvalidData(
                f"{label}: member {info.filename!r} overlaps the next member or the directory "
                "(an overlapping-entries zip bomb, or a corrupt file); nothing was loaded"
            )
