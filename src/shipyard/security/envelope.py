"""Envelope encryption with AES-256-GCM: one data key per object, wrapped by the master key.

Each object (a blob, named by the SHA-256 of its plaintext) gets a fresh random 256-bit data
key. The data key encrypts the object; the master key only encrypts ("wraps") the data key.
Rotating the master key therefore re-wraps 61-byte keys and leaves the data untouched.

**Wrapped key** (61 bytes): ``0x01 || nonce (12, random) || AES-GCM(master, data key)`` with
associated data ``"shipyard-dek/1" || master key id || object name``: a wrapped key copied onto
another object's row, or presented under another key id, fails authentication.

**Object stream**, so that objects of any size are encrypted and decrypted in bounded memory
(the STREAM construction of Hoang, Reyhanitabar, Rogaway and Vizár, "Online
Authenticated-Encryption and its Nonce-Reuse Misuse-Resistance", CRYPTO 2015)::

    header  = "SHYENC" || version 0x01 || chunk size (u32 BE) || nonce prefix (7 random bytes)
    chunk i = AES-GCM(data key, nonce = prefix || i (u32 BE) || final (1 byte),
                      plaintext[i * size : (i + 1) * size],
                      aad = "shipyard-blob/1" || object name || header || i (u64 BE) || final)

Every chunk is full-size but the last, which carries ``final = 1`` (an empty object is one empty
final chunk). A nonce is never reused: the data key is fresh per object and the counter is unique
per chunk. Because the index and the final flag are authenticated, reordering, dropping,
duplicating or truncating chunks, appending data, or moving the ciphertext to another object
name all fail with ``IntegrityFailure``; the header is authenticated by every chunk.
"""

from __future__ import annotations

import secrets
import struct
from typing import TYPE_CHECKING, BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shipyard.core.errors import IntegrityFailure, InvalidArgument
from shipyard.store.encryption import MasterKeyMismatch, WrappedKey

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from shipyard.security.keys import MasterKey

__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "Envelope",
    "MasterKeyMismatch",
    "rewrap",
]

#: Plaintext bytes per encrypted chunk: memory per stream is about two chunks.
DEFAULT_CHUNK_BYTES = 1 << 20
MAX_CHUNK_BYTES = 64 << 20
_MAGIC = b"SHYENC"
_VERSION = 1
_HEADER = struct.Struct(">6sBI7s")
_TAG_BYTES = 16
_WRAP_VERSION = b"\x01"
_WRAP_BYTES = 1 + 12 + 32 + _TAG_BYTES
_MAX_CHUNKS = 1 << 32


def _wrap_aad(key_id: str, name: str) -> bytes:
    return b"shipyard-dek/1\n" + key_id.encode("ascii") + b"\n" + name.encode("utf-8")


def _wrap(master: MasterKey, name: str, data_key: bytes) -> WrappedKey:
    nonce = secrets.token_bytes(12)
    sealed = AESGCM(master.material).encrypt(nonce, data_key, _wrap_aad(master.key_id, name))
    return WrappedKey(key_id=master.key_id, wrapped=_WRAP_VERSION + nonce + sealed)


def _unwrap(master: MasterKey, name: str, wrapped: WrappedKey) -> bytes:
    if wrapped.key_id != master.key_id:
        raise MasterKeyMismatch(
            f"object {name[:16]} is wrapped under master key {wrapped.key_id}, but the key "
            f"from {master.source} is {master.key_id}; give the workspace's current master key "
            "(`shipyard keys status` shows which key the data is under)"
        )
    blob = wrapped.wrapped
    if len(blob) != _WRAP_BYTES or blob[:1] != _WRAP_VERSION:
        raise IntegrityFailure(f"the wrapped data key of object {name[:16]} is malformed")
    try:
        return AESGCM(master.material).decrypt(
            blob[1:13], blob[13:], _wrap_aad(master.key_id, name)
        )
    except InvalidTag:
        raise IntegrityFailure(
            f"the wrapped data key of object {name[:16]} failed authentication: it was altered "
            "or belongs to another object"
        ) from None


def rewrap(name: str, wrapped: WrappedKey, old: MasterKey, new: MasterKey) -> WrappedKey:
    """Re-wrap one object's data key from ``old`` to ``new``; the data is not touched.

    Raises:
        MasterKeyMismatch: When ``wrapped`` is not under ``old``.
        IntegrityFailure: When the wrapped key fails authentication.
    """
    return _wrap(new, name, _unwrap(old, name, wrapped))


def _chunk_aad(name: str, header: bytes, index: int, final: bool) -> bytes:
    return b"".join(
        (
            b"shipyard-blob/1\n",
            name.encode("utf-8"),
            b"\n",
            header,
            struct.pack(">QB", index, final),
        )
    )


def _nonce(prefix: bytes, index: int, final: bool) -> bytes:
    if index >= _MAX_CHUNKS:
        raise InvalidArgument("object too large to encrypt: more than 2**32 chunks")
    return prefix + struct.pack(">IB", index, final)


def _read_full(stream: BinaryIO, size: int) -> bytes:
    """Read up to ``size`` bytes, looping over short reads until the size or end of stream."""
    parts: list[bytes] = []
    wanted = size
    while wanted > 0:
        part = stream.read(wanted)
        if not part:
            break
        parts.append(part)
        wanted -= len(part)
    return b"".join(parts)


class Envelope:
    """Seals and unseals objects under one master key (the ``BlobCipher`` of the blob store).

    Attributes:
        key_id: The id of the master key new objects are wrapped under.
    """

    def __init__(self, master: MasterKey, *, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> None:
        """Use ``master`` for wrapping, with ``chunk_bytes`` of plaintext per chunk.

        Raises:
            InvalidArgument: When ``chunk_bytes`` is not between 1 and 64 MiB.
        """
        if not 1 <= chunk_bytes <= MAX_CHUNK_BYTES:
            raise InvalidArgument(f"chunk_bytes must be 1..{MAX_CHUNK_BYTES}, got {chunk_bytes}")
        self._master = master
        self._chunk = chunk_bytes
        self.key_id = master.key_id

    def __repr__(self) -> str:
        return f"Envelope(key_id={self.key_id!r})"

    def seal(self, name: str, chunks: Iterable[bytes]) -> tuple[WrappedKey, Iterator[bytes]]:
        """Encrypt a stream under a new data key bound to ``name``.

        Args:
            name: The object's name (its plaintext digest), bound in as associated data.
            chunks: The plaintext, in pieces of any size.

        Returns:
            The wrapped data key, and a lazy iterator over the encrypted stream.
        """
        data_key = AESGCM.generate_key(bit_length=256)
        return _wrap(self._master, name, data_key), self._encrypt(data_key, name, chunks)

    def _encrypt(self, data_key: bytes, name: str, chunks: Iterable[bytes]) -> Iterator[bytes]:
        aead = AESGCM(data_key)
        prefix = secrets.token_bytes(7)
        header = _HEADER.pack(_MAGIC, _VERSION, self._chunk, prefix)
        yield header
        size = self._chunk
        buffer = bytearray()
        pending: bytes | None = None  # a full chunk held back until we know it is not the last
        index = 0
        for piece in chunks:
            buffer += piece
            while len(buffer) >= size:
                if pending is not None:
                    yield aead.encrypt(
                        _nonce(prefix, index, False),
                        pending,
                        _chunk_aad(name, header, index, False),
                    )
                    index += 1
                pending = bytes(buffer[:size])
                del buffer[:size]
        if pending is not None and buffer:
            yield aead.encrypt(
                _nonce(prefix, index, False), pending, _chunk_aad(name, header, index, False)
            )
            index += 1
            pending = None
        last = bytes(buffer) if pending is None else pending
        yield aead.encrypt(_nonce(prefix, index, True), last, _chunk_aad(name, header, index, True))

    def unseal(self, name: str, wrapped: WrappedKey, stream: BinaryIO) -> Iterator[bytes]:
        """Decrypt and authenticate an object's stream chunk by chunk.

        The data key is unwrapped before the first chunk is read, so a wrong master key fails
        at once; a chunk is yielded only after it authenticates.

        Raises:
            MasterKeyMismatch: When the object is wrapped under another master key.
            IntegrityFailure: When any part fails authentication, or the stream is cut short,
                extended, reordered or belongs to another object.
        """
        aead = AESGCM(_unwrap(self._master, name, wrapped))
        return self._decrypt(aead, name, stream)

    @staticmethod
    def _decrypt(aead: AESGCM, name: str, stream: BinaryIO) -> Iterator[bytes]:
        header = _read_full(stream, _HEADER.size)
        if len(header) < _HEADER.size:
            raise IntegrityFailure(f"object {name[:16]} is not an encrypted blob (no header)")
        magic, version, size, prefix = _HEADER.unpack(header)
        if magic != _MAGIC or version != _VERSION or not 1 <= size <= MAX_CHUNK_BYTES:
            raise IntegrityFailure(f"object {name[:16]} has an unknown encryption header")
        frame_bytes = size + _TAG_BYTES
        frame = _read_full(stream, frame_bytes)
        index = 0
        while True:
            following = _read_full(stream, frame_bytes) if len(frame) == frame_bytes else b""
            final = not following
            if len(frame) < _TAG_BYTES or (not final and len(frame) != frame_bytes):
                raise IntegrityFailure(f"object {name[:16]} is truncated")
            try:
                yield aead.decrypt(
                    _nonce(prefix, index, final), frame, _chunk_aad(name, header, index, final)
                )
            except InvalidTag:
                raise IntegrityFailure(
                    f"object {name[:16]} failed authentication at chunk {index}: its ciphertext "
                    "was altered, cut short, or belongs to another object"
                ) from None
            if final:
                if stream.read(1):
                    raise IntegrityFailure(f"object {name[:16]} has data after its last chunk")
                return
            frame, index = following, index + 1
