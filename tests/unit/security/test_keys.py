"""Master keys: parsing, key ids, key files (mode 600, no symlinks), the environment."""

from __future__ import annotations

import base64
import os
import stat
from typing import TYPE_CHECKING

import pytest

from shipyard.core.errors import InvalidSettings
from shipyard.security.keys import (
    MasterKey,
    generate_master_key,
    load_master_key,
    parse_master_key,
    write_key_file,
)

if TYPE_CHECKING:
    from pathlib import Path

RAW = bytes(range(32))
TEXT = base64.b64encode(RAW).decode()


def test_generated_keys_are_32_random_bytes() -> None:
    first, second = generate_master_key(), generate_master_key()
    assert len(base64.b64decode(first)) == 32
    assert first != second
    assert parse_master_key(first, "a").key_id != parse_master_key(second, "b").key_id


def test_key_id_is_stable_and_not_the_key() -> None:
    key = parse_master_key(f"  {TEXT}\n", "test")
    assert key.material == RAW
    assert key.key_id == MasterKey.from_bytes(RAW).key_id
    assert len(key.key_id) == 16
    assert key.key_id not in RAW.hex()
    assert TEXT not in repr(key)
    assert RAW.hex() not in repr(key)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("not base64!", "not valid base64"),
        (base64.b64encode(b"short").decode(), "is 5 bytes"),
        (base64.b64encode(bytes(33)).decode(), "is 33 bytes"),
        ("", "is 0 bytes"),
    ],
)
def test_malformed_keys_are_refused_without_echoing_them(text: str, match: str) -> None:
    with pytest.raises(InvalidSettings, match=match) as error:
        parse_master_key(text, "$SOME_VAR")
    assert "$SOME_VAR" in str(error.value)
    if text:
        assert text not in str(error.value)


def test_environment_variable_is_read() -> None:
    assert load_master_key(environ={}) is None
    assert load_master_key(environ={"SHIPYARD_MASTER_KEY": "  "}) is None
    key = load_master_key(environ={"SHIPYARD_MASTER_KEY": TEXT})
    assert key is not None
    assert key.material == RAW
    assert key.source == "$SHIPYARD_MASTER_KEY"
    other = load_master_key(env_var="OTHER", environ={"OTHER": TEXT})
    assert other is not None
    assert other.key_id == key.key_id


def test_key_file_round_trip_and_wins_over_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    write_key_file(path, TEXT)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    other = generate_master_key()
    key = load_master_key(key_file=path, environ={"SHIPYARD_MASTER_KEY": other})
    assert key is not None
    assert key.material == RAW
    with pytest.raises(InvalidSettings, match="already exists"):
        write_key_file(path, other)
    assert path.read_text().strip() == TEXT


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_key_files_readable_by_others_are_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "open.key"
    path.write_text(TEXT)
    path.chmod(mode)
    with pytest.raises(InvalidSettings, match="chmod 600"):
        load_master_key(key_file=path)


def test_key_file_problems_are_named(tmp_path: Path) -> None:
    with pytest.raises(InvalidSettings, match="does not exist"):
        load_master_key(key_file=tmp_path / "missing.key")
    real = tmp_path / "real.key"
    write_key_file(real, TEXT)
    link = tmp_path / "link.key"
    link.symlink_to(real)
    with pytest.raises(InvalidSettings, match="cannot open"):
        load_master_key(key_file=link)
    with pytest.raises(InvalidSettings):
        load_master_key(key_file=tmp_path)
    big = tmp_path / "big.key"
    big.write_bytes(b"A" * 5000)
    big.chmod(0o600)
    with pytest.raises(InvalidSettings, match="too large"):
        load_master_key(key_file=big)
    binary = tmp_path / "binary.key"
    binary.write_bytes(b"\xff\xfe" + os.urandom(30))
    binary.chmod(0o600)
    with pytest.raises(InvalidSettings, match="not base64"):
        load_master_key(key_file=binary)
