"""Model cards in Markdown and HTML, from real bundles with full and with bare metrics."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from shipyard.registry.bundle import Bundle, read_bundle
from shipyard.registry.card import card_plots, model_card_html, model_card_markdown
from shipyard.store.registry import AliasEvent, ModelVersion
from tests.unit.registry.bundles import bundle_bytes

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))
METRICS = {
    "test": {
        "roc_auc": {"value": 0.9812, "low": 0.9650, "high": 0.9931},
        "accuracy": {"value": 0.95, "low": None, "high": None},
    },
    "scores": {"train": 0.99, "cv_mean": 0.98, "validation": 0.97, "test": 0.9812},
    "estimator": "logistic",
    "params": {"C": 0.5},
    "split_sizes": {"train": 380, "validation": 100, "test": 89},
    "generalization": {"verdict": "overfit", "message": "training scored far better"},
    "slices": {
        "region": {
            "north": {"n_rows": 70, "metrics": {"roc_auc": 0.97}, "small": False},
            "<b>south|x</b>": {"n_rows": 19, "metrics": {"roc_auc": None}, "small": True},
        }
    },
}


def version(description: str | None = None) -> ModelVersion:
    return ModelVersion(
        name="cancer",
        version=3,
        bundle_sha256="ab" * 32,
        size_bytes=100,
        run_id="r" * 32,
        task="binary",
        primary_metric="roc_auc",
        metrics={},
        lineage={},
        description=description,
        created_by="ana",
        created_ms=1_767_225_600_000,
    )


HISTORY = [
    AliasEvent(1, "cancer", "production", "promote", None, 3, "ana", "baseline", {}, 1),
    AliasEvent(2, "cancer", "production", "refused", 3, 4, "bob|x", "<img src=x onerror=1>", {}, 2),
]


@pytest.fixture
def full(tmp_path: Path) -> Bundle:
    return read_bundle(
        bundle_bytes(
            tmp_path,
            test_dataset="d" * 64,
            metrics=METRICS,
            extra_files={
                "plots/roc.png": PNG,
                "plots/not-a-png.png": b"\x00\x00 text, not an image",
                "plots/odd name.png": PNG,
                "card.md": b"Use for triage only; a clinician decides.",
            },
            name="full",
        )
    )


def test_markdown_has_every_section_with_the_numbers(full: Bundle) -> None:
    text = model_card_markdown(version("Flags tumours for review"), full, HISTORY)
    headings = re.findall(r"^#+ (.*)$", text, flags=re.MULTILINE)
    assert headings == [
        "Model card: cancer version 3",
        "Intended use",
        "Model",
        "Data lineage",
        "Test metrics (95% bootstrap intervals)",
        "Slices",
        "By `region`",
        "Plots",
        "Limitations",
        "Alias history",
    ]
    assert "Flags tumours for review" in text
    assert "Use for triage only; a clinician decides." in text
    assert "| roc_auc | 0.9812 | 0.9650 to 0.9931 |" in text
    assert "| accuracy | 0.9500 | - |" in text
    assert f"Dataset (test): `{'d' * 64}`" in text
    assert "`" + "r" * 32 + "`" in text
    assert "train 380, validation 100, test 89" in text
    assert "**overfit**" in text
    assert "Only 89 test rows" in text
    assert "too few test rows to judge" in text
    assert "![roc.png](<plots/roc.png>)" in text
    assert "not-a-png" not in text
    assert "odd name" not in text
    assert "was not checked for fairness" in text


def test_markdown_tables_keep_their_shape_whatever_the_text(full: Bundle) -> None:
    text = model_card_markdown(version(), full, HISTORY)
    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    rows = [t for t in tokens if t.type == "tr_open"]
    cells_per_row = []
    for i, token in enumerate(tokens):
        if token.type == "tr_open":
            j = i + 1
            count = 0
            while tokens[j].type != "tr_close":
                count += tokens[j].type in ("td_open", "th_open")
                j += 1
            cells_per_row.append(count)
    # metrics 1+2 rows, slices 1+2, history 1+2: pipes in values did not add cells
    assert len(rows) == 9
    assert cells_per_row == [3, 3, 3, 3, 3, 3, 7, 7, 7]


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def test_html_escapes_user_text_and_inlines_plots(full: Bundle) -> None:
    page = model_card_html(version("<script>alert(1)</script> **bold**"), full, HISTORY)
    parser = _Tags()
    parser.feed(page)
    names = [tag for tag, _ in parser.tags]
    assert "script" not in names
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<strong>bold</strong>" in page  # the description is Markdown
    assert "&lt;img src=x onerror=1&gt;" in page
    assert "&lt;b&gt;south|x&lt;/b&gt;" in page
    images = [attrs for tag, attrs in parser.tags if tag == "img"]
    assert [a["alt"] for a in images] == ["roc.png"]
    source = images[0]["src"] or ""
    assert source.startswith("data:image/png;base64,")
    assert base64.b64decode(source.split(",", 1)[1]) == PNG
    assert page.count("<table>") == 3


def test_a_bare_bundle_gets_a_card_without_invented_numbers(tmp_path: Path) -> None:
    bare = read_bundle(bundle_bytes(tmp_path, metrics={}, name="bare"))
    text = model_card_markdown(version(), bare, [])
    assert "## Test metrics" not in text
    assert "## Slices" not in text
    assert "## Plots" not in text
    assert "## Alias history" not in text
    assert "No intended use was given" in text
    assert "Datasets: not recorded" in text
    assert "## Limitations" in text
    assert card_plots(bare) == {}
    assert model_card_html(version(), bare, []).startswith("<!doctype html>")


def test_odd_metric_shapes_do_not_break_the_card(tmp_path: Path) -> None:
    odd = read_bundle(
        bundle_bytes(
            tmp_path,
            metrics={
                "test": {"roc_auc": 0.93, "brier": {"value": None}},
                "slices": ["not", "a", "dict"],
                "generalization": "ok",
                "params": "C=1",
                "split_sizes": {"test": "many"},
            },
            name="odd",
        )
    )
    text = model_card_markdown(version(), odd, [])
    assert "| roc_auc | 0.9300 | - |" in text
    assert "| brier | - | - |" in text


def test_training_warnings_and_the_refit_are_on_the_card(tmp_path: Path) -> None:
    metrics = {
        **METRICS,
        "warnings": ["column 'refund' is a likely leak: alone it predicts the target"],
        "refit": "train+validation",
    }
    bundle = read_bundle(bundle_bytes(tmp_path, metrics=metrics, name="warned"))
    text = model_card_markdown(version(), bundle, [])
    limitations = text.split("## Limitations", 1)[1]
    assert "Warning: column 'refund' is a likely leak" in limitations
    assert "refitted on the training and validation rows" in text
