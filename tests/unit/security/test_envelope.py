"""Envelope encryption: round trips at every chunk boundary, and every tampering refused."""

from __future__ import annotations

import hashlib
import io
import os

import pytest

from shipyard.core.errors import IntegrityFailure, InvalidArgument
from shipyard.security.envelope import Envelope, MasterKeyMismatch, rewrap
from shipyard.security.keys import MasterKey
from shipyard.store.encryption import WrappedKey

CHUNK = 16
HEADER = 18
FRAME = CHUNK + 16


def key(seed: int) -> MasterKey:
    return MasterKey.from_bytes(hashlib.sha256(bytes([seed])).digest(), f"test key {seed}")


def name(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def seal(envelope: Envelope, data: bytes, pieces: int = 3) -> tuple[WrappedKey, bytes]:
    step = max(1, len(data) // pieces)
    chunks = [data[i : i + step] for i in range(0, len(data), step)]
    wrapped, stream = envelope.seal(name(data), chunks)
    return wrapped, b"".join(stream)


def unseal(envelope: Envelope, digest: str, wrapped: WrappedKey, sealed: bytes) -> bytes:
    return b"".join(envelope.unseal(digest, wrapped, io.BytesIO(sealed)))


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 5])
def test_round_trip_at_every_chunk_boundary(size: int) -> None:
    envelope = Envelope(key(1), chunk_bytes=CHUNK)
    data = os.urandom(size)
    wrapped, sealed = seal(envelope, data)
    chunks = max(1, -(-size // CHUNK))
    assert len(sealed) == HEADER + size + 16 * chunks
    assert wrapped.key_id == key(1).key_id
    assert unseal(envelope, name(data), wrapped, sealed) == data


def test_the_same_content_encrypts_differently_each_time() -> None:
    envelope = Envelope(key(1), chunk_bytes=CHUNK)
    data = b"secret marker " * 5
    first, second = seal(envelope, data), seal(envelope, data)
    assert first[1] != second[1]
    assert first[0].wrapped != second[0].wrapped
    assert b"secret" not in first[1]


def _frames(sealed: bytes) -> tuple[bytes, list[bytes]]:
    body = sealed[HEADER:]
    return sealed[:HEADER], [body[i : i + FRAME] for i in range(0, len(body), FRAME)]


def _tampered(sealed: bytes) -> dict[str, bytes]:
    header, frames = _frames(sealed)
    flipped = bytearray(sealed)
    flipped[HEADER + FRAME + 3] ^= 1
    header_flipped = bytearray(sealed)
    header_flipped[12] ^= 1  # a nonce-prefix byte
    return {
        "flipped ciphertext byte": bytes(flipped),
        "flipped header byte": bytes(header_flipped),
        "chunks swapped": header + frames[1] + frames[0] + b"".join(frames[2:]),
        "chunk dropped": header + frames[0] + b"".join(frames[2:]),
        "last chunk dropped": header + b"".join(frames[:-1]),
        "chunk duplicated": header + frames[0] + b"".join(frames),
        "cut mid-chunk": sealed[: HEADER + FRAME + 5],
        "data appended": sealed + b"x",
        "header only": header,
        "empty": b"",
    }


@pytest.mark.parametrize(
    "case",
    [
        "flipped ciphertext byte",
        "flipped header byte",
        "chunks swapped",
        "chunk dropped",
        "last chunk dropped",
        "chunk duplicated",
        "cut mid-chunk",
        "data appended",
        "header only",
        "empty",
    ],
)
def test_tampering_is_refused(case: str) -> None:
    envelope = Envelope(key(1), chunk_bytes=CHUNK)
    data = os.urandom(3 * CHUNK + 4)  # four chunks, the last one short
    wrapped, sealed = seal(envelope, data)
    with pytest.raises(IntegrityFailure):
        unseal(envelope, name(data), wrapped, _tampered(sealed)[case])


def test_exact_multiple_cut_at_a_frame_boundary_is_refused() -> None:
    envelope = Envelope(key(1), chunk_bytes=CHUNK)
    data = os.urandom(3 * CHUNK)  # the final chunk is full-size: only its flag marks it last
    wrapped, sealed = seal(envelope, data)
    with pytest.raises(IntegrityFailure, match="chunk 1"):
        unseal(envelope, name(data), wrapped, sealed[: HEADER + 2 * FRAME])


def test_ciphertext_is_bound_to_its_object_name() -> None:
    envelope = Envelope(key(1), chunk_bytes=CHUNK)
    data = b"model bytes"
    wrapped, sealed = seal(envelope, data)
    other = name(b"another object")
    with pytest.raises(IntegrityFailure):  # the wrapped key names the object too
        unseal(envelope, other, wrapped, sealed)


def test_a_wrapped_key_moved_to_another_object_is_refused() -> None:
    envelope = Envelope(key(1), chunk_bytes=CHUNK)
    a, b = b"object a", b"object b"
    wrapped_a, _ = seal(envelope, a)
    _, sealed_b = seal(envelope, b)
    with pytest.raises(IntegrityFailure, match="wrapped data key"):
        unseal(envelope, name(b), wrapped_a, sealed_b)


def test_wrong_master_key_names_both_key_ids() -> None:
    data = b"payload"
    wrapped, sealed = seal(Envelope(key(1)), data)
    with pytest.raises(MasterKeyMismatch, match=f"{key(1).key_id}.*{key(2).key_id}"):
        unseal(Envelope(key(2)), name(data), wrapped, sealed)


def test_a_forged_key_id_does_not_unwrap() -> None:
    data = b"payload"
    wrapped, sealed = seal(Envelope(key(1)), data)
    forged = WrappedKey(key(2).key_id, wrapped.wrapped)
    with pytest.raises(IntegrityFailure, match="failed authentication"):
        unseal(Envelope(key(2)), name(data), forged, sealed)


@pytest.mark.parametrize("blob", [b"", b"\x01" * 10, b"\x02" + b"\x00" * 60])
def test_malformed_wrapped_keys_are_refused(blob: bytes) -> None:
    data = b"payload"
    _, sealed = seal(Envelope(key(1)), data)
    with pytest.raises(IntegrityFailure, match="malformed"):
        unseal(Envelope(key(1)), name(data), WrappedKey(key(1).key_id, blob), sealed)


def test_rewrap_moves_the_data_key_without_touching_the_data() -> None:
    data = os.urandom(100)
    wrapped, sealed = seal(Envelope(key(1), chunk_bytes=CHUNK), data)
    moved = rewrap(name(data), wrapped, key(1), key(2))
    assert moved.key_id == key(2).key_id
    assert unseal(Envelope(key(2)), name(data), moved, sealed) == data
    with pytest.raises(MasterKeyMismatch):
        unseal(Envelope(key(1)), name(data), moved, sealed)
    with pytest.raises(MasterKeyMismatch):
        rewrap(name(data), moved, key(1), key(3))


def test_streaming_decrypt_yields_chunk_by_chunk() -> None:
    envelope = Envelope(key(1), chunk_bytes=CHUNK)
    data = os.urandom(10 * CHUNK)
    wrapped, sealed = seal(envelope, data, pieces=1)
    pieces = list(envelope.unseal(name(data), wrapped, io.BytesIO(sealed)))
    assert [len(p) for p in pieces] == [CHUNK] * 10


@pytest.mark.parametrize("size", [0, -1, (64 << 20) + 1])
def test_chunk_size_is_bounded(size: int) -> None:
    with pytest.raises(InvalidArgument, match="chunk_bytes"):
        Envelope(key(1), chunk_bytes=size)
