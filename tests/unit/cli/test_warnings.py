"""Library warnings reach the terminal as one line naming the library, never a source path."""

from __future__ import annotations

import warnings

import pytest

from shipyard.cli.main import _quiet_library_warnings

SKLEARN_FILE = "/p/.venv/lib/python3.11/site-packages/sklearn/utils/validation.py"


def test_a_library_warning_is_one_line_without_its_source_path(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        _quiet_library_warnings()
        warnings.warn_explicit(
            "X does not have valid feature names, but LogisticRegression was fitted with them\n"
            "  second line",
            UserWarning,
            SKLEARN_FILE,
            2739,
        )
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "warning (sklearn): X does not have valid feature names, but LogisticRegression was "
        "fitted with them"
    ]
    assert "site-packages" not in err
    assert "2739" not in err
