"""Hostile zips built byte by byte: bombs, lying headers, symlinks, overlapping members.

``zipfile`` cannot write most of these (it computes sizes and CRCs itself), so ``raw_zip``
writes the local headers, the central directory and its end record from ``RawMember``\\s whose
every field the test chooses (PKWARE APPNOTE.TXT 4.3). ``zeros_deflated`` makes gigabytes of
zeros in milliseconds: after a full flush a deflate stream forgets its history, so the
compressed form of one MiB of zeros is the same bytes each time and can simply be repeated.
"""

from __future__ import annotations

import hashlib
import io
import json
import stat
import struct
import zipfile
import zlib
from dataclasses import dataclass, replace

from tests.unit.registry.models import members

GIB2 = 2 << 30
# zlib.crc32 and sha256 of 2 GiB of zeros, computed once (16 MiB chunks, 128 times).
CRC_ZEROS_2GIB = 0x4DBDF21C
SHA_ZEROS_2GIB = "a7c744c13cc101ed66c29f672f92455547889cc586ce6d44fe76ae824958ea51"
_UNIX = 3 << 8 | 30  # "made by" Unix, spec 3.0: external_attr carries the st_mode


@dataclass(frozen=True)
class RawMember:
    """One member as written: every size, CRC and attribute is the test's choice."""

    name: str
    payload: bytes  # the bytes after the local header (compressed when method is deflate)
    size: int  # the uncompressed size the headers declare
    crc: int
    method: int = zipfile.ZIP_DEFLATED
    mode: int = stat.S_IFREG | 0o644
    offset: int | None = None  # a central-directory offset of our own (overlaps)


def honest(name: str, data: bytes) -> RawMember:
    """A well-formed deflated member."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    payload = compressor.compress(data) + compressor.flush()
    return RawMember(name, payload, len(data), zlib.crc32(data))


def zeros_deflated(size: int) -> bytes:
    """A raw deflate stream of ``size`` zeros (a multiple of 1 MiB), about size/1000 bytes."""
    chunk = 1 << 20
    assert size % chunk == 0
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    piece = compressor.compress(bytes(chunk)) + compressor.flush(zlib.Z_FULL_FLUSH)
    return piece * (size // chunk) + compressor.flush()


def raw_zip(entries: list[RawMember]) -> bytes:
    """A zip of ``entries`` in order, with exactly the headers they describe."""
    out, central = io.BytesIO(), io.BytesIO()
    for entry in entries:
        offset = out.tell()
        name = entry.name.encode()
        out.write(
            struct.pack(
                "<4s5H3L2H",
                b"PK\x03\x04",
                20,
                0x800,
                entry.method,
                0,
                0x21,
                entry.crc,
                len(entry.payload),
                entry.size,
                len(name),
                0,
            )
        )
        out.write(name + entry.payload)
        central.write(
            struct.pack(
                "<4s6H3L5H2L",
                b"PK\x01\x02",
                _UNIX,
                20,
                0x800,
                entry.method,
                0,
                0x21,
                entry.crc,
                len(entry.payload),
                entry.size,
                len(name),
                0,
                0,
                0,
                0,
                entry.mode << 16,
                offset if entry.offset is None else entry.offset,
            )
        )
        central.write(name)
    start, directory = out.tell(), central.getvalue()
    count = len(entries)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, count, count, len(directory), start, 0)
    return out.getvalue() + directory + end


def with_members(bundle: bytes, extra: list[RawMember], *, listed: dict[str, str]) -> bytes:
    """``bundle`` rebuilt with ``extra`` members, which its manifest lists with ``listed``.

    The attacker has write access and fixes the manifest, so only the reader's own checks stand
    between the file and the loader.
    """
    content = members(bundle)
    document = json.loads(content["manifest.json"])
    document["files"] = {**document["files"], **listed}
    content["manifest.json"] = json.dumps(document).encode()
    return raw_zip([*(honest(n, d) for n, d in content.items()), *extra])


def declared_bomb(bundle: bytes) -> bytes:
    """A real 2 GiB bomb in about 2 MB: honest headers, CRC and checksum; only huge."""
    bomb = RawMember("plots/big.png", zeros_deflated(GIB2), GIB2, CRC_ZEROS_2GIB)
    return with_members(bundle, [bomb], listed={bomb.name: SHA_ZEROS_2GIB})


def lying_bomb(bundle: bytes, declared: int) -> bytes:
    """A member whose headers declare ``declared`` bytes but whose data expands to 64 MiB."""
    bomb = RawMember("plots/lie.png", zeros_deflated(64 << 20), declared, 0)
    return with_members(bundle, [bomb], listed={bomb.name: "0" * 64})


def symlink_to(bundle: bytes, target: str) -> bytes:
    """A bundle with a member ``plots/link.png`` that is a symlink to ``target``."""
    link = replace(honest("plots/link.png", target.encode()), mode=stat.S_IFLNK | 0o777)
    digest = hashlib.sha256(target.encode()).hexdigest()
    return with_members(bundle, [link], listed={link.name: digest})
