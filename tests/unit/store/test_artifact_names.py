"""Artifact names: the shared bad-input corpus is refused, good names pass, paths stay inside."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shipyard.core.errors import InvalidArgument, InvalidName
from shipyard.store.artifacts import safe_destination, validate_artifact_name
from shipyard.store.artifacts.names import is_within
from tests.corpus import BAD_NAMES, GOOD_NAMES

# The refusal must say *why*: one fragment per shape of attack.
EXPECTED_FRAGMENT = [
    ("../x", r"'\.\.' segment"),
    ("a/../../b", r"'\.\.' segment"),
    ("../root_evil/x", r"'\.\.' segment"),
    ("./x", r"'\.' segment"),
    ("..\\x", "backslash"),
    ("C:\\x", "backslash"),
    ("%2e%2e%2f", "'%'"),
    ("%252e%252e%252f", "'%'"),
    ("..%2f", "'%'"),
    ("/etc/passwd", "absolute path"),
    ("a;/../../b", "';'"),
    ("a#/../../b", "'#'"),
    ("a?x=/../../b", r"'\?'"),
    ("\uff0e\uff0e\uff0f", "NFKC"),
    ("e\u0301", "NFKC"),
    ("a\x00b", "control character U\\+0000"),
    ("a" * 4096, "4096 characters long; the limit is 1024"),
    ("a" * 256, "256 characters long; the limit is 255"),
    ("model.", "ends with a dot or space"),
    ("model ", "ends with a dot or space"),
    (" x", "starts with a space"),
    ("", "must not be empty"),
    ("a//b", "empty segment"),
    ("C:x", "':'"),
    ("c:/x", "':'"),
    ("file:///etc/passwd", "':'"),
    ("~/x", "'~'"),
    ("a*b", "U\\+002A"),
]


@pytest.mark.parametrize("name", BAD_NAMES, ids=lambda n: repr(n)[:40])
def test_every_bad_name_is_refused_with_an_explanation(name: str) -> None:
    with pytest.raises(InvalidName, match="allowed are letters, digits") as info:
        validate_artifact_name(name)
    assert info.value.code == "invalid_name"
    assert isinstance(info.value, InvalidArgument)


@pytest.mark.parametrize(("name", "fragment"), EXPECTED_FRAGMENT, ids=lambda v: repr(v)[:40])
def test_refusal_names_the_problem(name: str, fragment: str) -> None:
    assert name in BAD_NAMES
    with pytest.raises(InvalidName, match=fragment):
        validate_artifact_name(name)


@pytest.mark.parametrize("value", [None, 5, b"model.skops", Path("model.skops"), ["a"]])
def test_non_strings_are_refused(value: object) -> None:
    with pytest.raises(InvalidName, match="must be a string"):
        validate_artifact_name(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", GOOD_NAMES, ids=lambda n: repr(n)[:40])
def test_good_names_are_returned_unchanged(name: str) -> None:
    assert validate_artifact_name(name) == name


def test_long_names_are_truncated_in_the_message() -> None:
    with pytest.raises(InvalidName) as info:
        validate_artifact_name("a" * 4096)
    assert len(str(info.value)) < 400


@pytest.mark.parametrize("name", BAD_NAMES, ids=lambda n: repr(n)[:40])
def test_safe_destination_refuses_bad_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(InvalidName):
        safe_destination(tmp_path, name)


@pytest.mark.parametrize("name", GOOD_NAMES, ids=lambda n: repr(n)[:40])
def test_safe_destination_joins_good_names_under_root(tmp_path: Path, name: str) -> None:
    dest = safe_destination(tmp_path, name)
    assert dest == Path(os.path.realpath(tmp_path)).joinpath(*name.split("/"))
    assert not dest.exists()  # mapping a name creates nothing


_SEGMENT = st.text(
    alphabet=st.sampled_from("abcXYZ019._-+=@ /\\:%;#?~\x00\uff0e\uff0f"), min_size=1, max_size=30
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.one_of(_SEGMENT, st.lists(_SEGMENT, min_size=1, max_size=6).map("/".join)))
def test_any_accepted_name_stays_inside_the_root(tmp_path: Path, name: str) -> None:
    try:
        dest = safe_destination(tmp_path, name)
    except InvalidName:
        return
    root = os.path.realpath(tmp_path)
    assert os.path.commonpath([root, str(dest)]) == root
    assert str(dest) != root
    assert str(dest).startswith(root + os.sep)


def test_symlink_inside_root_pointing_outside_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "escape").symlink_to(outside, target_is_directory=True)
    with pytest.raises(InvalidName, match="symlink"):
        safe_destination(root, "escape/model.skops")
    assert not list(outside.iterdir())


def test_symlinked_file_inside_root_is_refused_even_when_it_points_inside(tmp_path: Path) -> None:
    (tmp_path / "real.txt").write_text("x")
    (tmp_path / "link.txt").symlink_to(tmp_path / "real.txt")
    with pytest.raises(InvalidName, match="symlink"):
        safe_destination(tmp_path, "link.txt")


def test_root_itself_may_be_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "alias").symlink_to(real, target_is_directory=True)
    assert safe_destination(tmp_path / "alias", "a/b") == Path(os.path.realpath(real)) / "a" / "b"


def test_sibling_with_root_as_string_prefix_is_not_inside(tmp_path: Path) -> None:
    root = tmp_path / "root"
    evil = tmp_path / "root_evil"
    root.mkdir()
    evil.mkdir()
    # A string-prefix check would accept this; commonpath does not.
    assert str(evil / "x").startswith(str(root))
    assert not is_within(root, evil / "x")
    assert is_within(root, root / "x")
    with pytest.raises(InvalidName):
        safe_destination(root, "../root_evil/x")
    (root / "door").symlink_to(evil, target_is_directory=True)
    with pytest.raises(InvalidName):
        safe_destination(root, "door/x")
