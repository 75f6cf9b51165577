"""``shipyard privacy detect|kanon`` and ``shipyard erase``, driven in-process."""

from __future__ import annotations

import io

import polars as pl
import pytest

from shipyard.cli import context
from shipyard.data.datasets import list_datasets, read_dataset, write_dataset
from shipyard.track.workspace import Workspace
from tests.unit.cli.running import cli

SUBJECT = "ann@example.com"
WIDTH = 200


@pytest.fixture(autouse=True)
def _wide_plain_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", str(WIDTH))
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(name, raising=False)
    assert context.console.width == WIDTH


def people() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "email": [SUBJECT, "bob@example.com", "cy@example.com", SUBJECT, "di@example.com"],
            "phone": ["+44 20 7946 0958", "(555) 123-4567", "555-123-4567", None, "020 7946 0958"],
            "card": ["4111111111111111", "5555555555554444", "378282246310005",
                     "6011111111111117", "4012888888881881"],
            "zip": ["12345", "12345", "54321", "54321", "54321"],
            "sex": ["F", "F", "M", "M", "M"],
            "disease": ["flu", "cold", "flu", "asthma", "flu"],
            "price": [1.5, 2.5, 3.5, 4.5, 5.5],
        }
    )  # fmt: skip


def written() -> str:
    with Workspace.open() as ws:
        return write_dataset(ws, people(), name="people").dataset_id


def test_detect_lists_the_personal_columns(capsys: pytest.CaptureFixture[str]) -> None:
    dataset = written()
    result = cli(capsys, "privacy", "detect", dataset[:10])
    assert result.code == 0, result
    rows = {line.split("│")[1].strip(): line for line in result.out.splitlines() if "│" in line}
    assert set(rows) == {"email", "phone", "card", "zip"}  # not sex, disease or price
    assert "payment_card" in rows["card"]
    assert "values" in rows["card"]
    assert "postal_code" in rows["zip"]
    assert "name" in rows["zip"]


def test_kanon_reports_k_l_and_the_smallest_classes(capsys: pytest.CaptureFixture[str]) -> None:
    dataset = written()
    result = cli(
        capsys, "privacy", "kanon", dataset, "--qi", "zip,sex", "--sensitive", "disease", "--k", "2"
    )
    assert result.code == 0, result
    # Classes: (12345, F) 2 rows {flu, cold}; (54321, M) 3 rows {flu, asthma}.
    assert "5 rows in 2 classes" in result.out
    assert "k = 2; k >= 2 holds" in result.out
    assert "l = 2 distinct disease values" in result.out
    assert "rows in classes below 2: 0" in result.out
    failing = cli(capsys, "privacy", "kanon", dataset, "--qi", "zip,sex", "--k", "3")
    assert "does not hold" in failing.out
    assert "rows in classes below 3: 2 (1 classes)" in failing.out
    bad = cli(capsys, "privacy", "kanon", dataset, "--qi", "nope")
    assert bad.code == 2
    assert "'nope'" in bad.err


def test_erase_asks_first_and_never_prints_the_value(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = written()
    monkeypatch.setenv("SHIPYARD_PSEUDONYM_KEY", "k" * 40)
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    refused = cli(capsys, "erase", "--subject-column", "email", "--value", SUBJECT)
    assert refused.code == 1
    assert "people" in refused.out
    assert "2 of 5 rows" in refused.out
    assert "nothing changed" in refused.out
    with Workspace.open() as ws:
        assert len(list_datasets(ws)) == 1

    done = cli(capsys, "erase", "--subject-column", "email", "--value", SUBJECT, "--yes")
    assert done.code == 0, done
    assert "erased 2 row(s) from 1 version(s)" in done.out
    assert "1 file(s) destroyed" in done.out
    assert "audit:" in done.out
    assert "hmac-sha256:" in done.out
    for result in (refused, done):
        assert SUBJECT not in result.out + result.err
    with Workspace.open() as ws:
        versions = list_datasets(ws)
        assert len(versions) == 2
        new = next(v for v in versions if v.dataset_id != dataset)
        assert SUBJECT not in read_dataset(ws, new).collect()["email"].to_list()
        assert not ws.blobs.exists(next(v for v in versions if v.dataset_id == dataset).digest)

    again = cli(capsys, "erase", "--subject-column", "email", "--value", SUBJECT, "--yes")
    assert again.code == 0
    assert "nothing to erase" in again.out


def test_erase_reads_the_value_from_stdin_and_warns_without_a_key(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    written()
    monkeypatch.setattr("sys.stdin", io.StringIO(SUBJECT + "\n"))
    result = cli(capsys, "erase", "--subject-column", "email", "--value", "-", "--yes")
    assert result.code == 0, result
    assert "SHIPYARD_PSEUDONYM_KEY is not set" in result.err
    assert "erased 2 row(s)" in result.out
    assert SUBJECT not in result.out + result.err


def test_erase_with_a_short_key_is_a_one_line_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    written()
    monkeypatch.setenv("SHIPYARD_PSEUDONYM_KEY", "short")
    result = cli(capsys, "erase", "--subject-column", "email", "--value", SUBJECT, "--yes")
    assert result.code == 2
    assert result.err.startswith("error: ")
    assert "at least 32" in result.err
    assert len(result.err.splitlines()) == 1
