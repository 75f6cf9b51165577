"""Model cards: what a version is for, where it came from, how good it is and where it is not.

Built from what the registry already holds (the version row, the bundle's manifest, plots and
optional ``card.md``, the alias history), so a card can never disagree with the model it
describes. Markdown for repositories and reviews; HTML for people who just want to open a file.

Every string in a card comes from users or their data (descriptions, reasons, column names,
category values), so the Markdown puts names in code spans built to hold any text and escapes
table cells, and the HTML is rendered by markdown-it with raw HTML off (``<script>`` in a
description shows as text) and plots inlined as data URIs. Only plots with plain file names and
PNG content are shown; they are the only files a card writes next to its Markdown.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import math
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shipyard.registry.bundle import Bundle
    from shipyard.store.registry import AliasEvent, ModelVersion

CARD_MEMBER = "card.md"
SMALL_TEST_ROWS = 100
_PNG = b"\x89PNG\r\n\x1a\n"
_PLOT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,100}\.png$")
# Characters that start inline markup anywhere, and underscores at a word's edge (inside a word
# CommonMark never reads ``_`` as emphasis, so ``roc_auc`` stays as written).
_INLINE = re.compile(r"[\\`*\[\]<>|~&!]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
# What makes a line a heading, list item, quote or rule when it starts it.
_BLOCK_START = re.compile(r"^(?:[#+=>-]|\d+[.)])")
_NOT_VALIDATED = (
    "The model was validated only on held-out rows like its training data (same sources, same "
    "period). It was not checked for fairness across groups beyond the slices listed, on data "
    "from other periods or populations, or against adversarial inputs; watch for drift before "
    "trusting it on new data."
)


def card_plots(bundle: Bundle) -> dict[str, bytes]:
    """The bundle's plots that a card shows: plain ``*.png`` names holding PNG bytes."""
    return {
        name: data
        for name, data in sorted(bundle.plots().items())
        if _PLOT_NAME.match(name) and data.startswith(_PNG)
    }


def model_card_markdown(
    version: ModelVersion,
    bundle: Bundle,
    history: list[AliasEvent],
    *,
    plots_dir: str | None = "plots",
) -> str:
    """Render the card as Markdown; plots are linked under ``plots_dir`` (None: left out).

    Sections: intended use, model, data lineage, test metrics with intervals, slices, plots,
    limitations, alias history. Whatever the manifest lacks is left out, not invented.
    """
    m = bundle.manifest
    metrics = m.metrics if isinstance(m.metrics, dict) else {}
    lines = [f"# Model card: {_text(version.name)} version {version.version}", ""]
    lines += ["## Intended use", "", *_intended_use(version, bundle), ""]
    lines += ["## Model", "", *_model(version, bundle, metrics), ""]
    lines += ["## Data lineage", "", *_lineage(version, bundle, metrics), ""]
    lines += _metrics(m.primary_metric, metrics)
    lines += _slices(_dict(metrics.get("slices")))
    plots = card_plots(bundle)
    if plots_dir is not None and plots:
        lines += ["## Plots", ""]
        lines += [f"![{name}](<{plots_dir}/{name}>)" for name in plots]
        lines.append("")
    lines += ["## Limitations", ""]
    lines += [f"- {text}" for text in _limitations(metrics)]
    lines += [f"- {_NOT_VALIDATED}", ""]
    lines += _history(history)
    return "\n".join(lines).rstrip("\n") + "\n"


def model_card_html(version: ModelVersion, bundle: Bundle, history: list[AliasEvent]) -> str:
    """Render the card as one self-contained HTML page (raw HTML off, plots inlined)."""
    from markdown_it import MarkdownIt

    text = model_card_markdown(version, bundle, history, plots_dir=None)
    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(text)
    figures = "".join(
        f'<figure><img alt="{html.escape(name)}" '
        f'src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'
        f"<figcaption>{html.escape(name)}</figcaption></figure>"
        for name, png in card_plots(bundle).items()
    )
    title = html.escape(f"{version.name} version {version.version}")
    return (
        "<!doctype html>\n<html><head><meta charset='utf-8'>"
        f"<title>Model card: {title}</title>"
        "<style>body{font-family:sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2rem .5rem}"
        "img{max-width:28rem}figure{display:inline-block;margin:.5rem}</style></head><body>\n"
        f"{body}{'<h2>Plots</h2>' + figures if figures else ''}</body></html>\n"
    )


# -- sections ----------------------------------------------------------------------------------


def _intended_use(version: ModelVersion, bundle: Bundle) -> list[str]:
    m = bundle.manifest
    lines = [
        version.description
        or f"Predicts {_code(m.target)} ({m.task}). No intended use was given at registration: "
        "`shipyard models register --description` records one."
    ]
    if CARD_MEMBER in bundle.names():
        notes = bundle.file(CARD_MEMBER).decode("utf-8", errors="replace").strip()
        if notes:
            lines += ["", notes]
    return lines


def _model(version: ModelVersion, bundle: Bundle, metrics: dict[str, Any]) -> list[str]:
    m = bundle.manifest
    classes = f"; classes {', '.join(_code(c) for c in m.classes)}" if m.classes else ""
    features = ", ".join(f"{_code(f.name)} ({f.dtype})" for f in m.features)
    threshold = "default (0.5)" if m.threshold is None else f"{m.threshold:.4f}"
    lines = [f"- Task: {m.task}; target {_code(m.target)}{classes}"]
    if metrics.get("estimator"):
        lines.append(
            f"- Estimator: {_code(metrics['estimator'])} with {_params(metrics.get('params'))}"
        )
    lines += [f"- Features ({len(m.features)}): {features}"]
    if m.task == "binary":
        lines.append(f"- Decision threshold on the positive class: {threshold}")
    lines.append(
        f"- Bundle sha256 `{version.bundle_sha256}`; registered by {_code(version.created_by)} "
        f"at {_when(version.created_ms)}"
    )
    return lines


def _lineage(version: ModelVersion, bundle: Bundle, metrics: dict[str, Any]) -> list[str]:
    lineage = bundle.manifest.lineage
    run = lineage.run_id or version.run_id
    lines = [
        f"- Training run: {_code(run) if run else 'not recorded'}; code version "
        f"{_code(lineage.code_version) if lineage.code_version else 'not recorded'}",
        f"- Spec hash {_code(lineage.spec_hash[:16]) if lineage.spec_hash else 'not recorded'}; "
        f"seed {'not recorded' if lineage.seed is None else lineage.seed}",
    ]
    lines += [f"- Dataset ({_text(role)}): {_code(ds)}" for role, ds in lineage.dataset_ids.items()]
    if not lineage.dataset_ids:
        lines.append("- Datasets: not recorded in the bundle")
    splits = _dict(metrics.get("split_sizes"))
    if splits:
        rows = ", ".join(f"{_text(k)} {_count(v)}" for k, v in splits.items())
        lines.append(f"- Rows: {rows}")
    return lines


def _metrics(primary: str, metrics: dict[str, Any]) -> list[str]:
    test = _dict(metrics.get("test"))
    lines: list[str] = []
    if test:
        lines += [
            "## Test metrics (95% bootstrap intervals)",
            "",
            "| metric | value | interval |",
            "|---|---|---|",
        ]
        for name, value in test.items():
            point = value.get("value") if isinstance(value, dict) else value
            lines.append(f"| {_cell(name)} | {_num(point)} | {_interval(value)} |")
        lines.append("")
    scores = _dict(metrics.get("scores"))
    if scores:
        parts = [
            f"{label} {_num(scores.get(key))}"
            for key, label in (
                ("train", "train"),
                ("cv_mean", "cross-validation mean"),
                ("validation", "validation"),
                ("test", "test"),
            )
            if key in scores
        ]
        lines += [f"Primary metric {_code(primary)}: {', '.join(parts)}.", ""]
    if metrics.get("refit") == "train+validation":
        lines += [
            "The shipped model was refitted on the training and validation rows together "
            "before the one test score; the validation score is of the model fitted on the "
            "training rows alone.",
            "",
        ]
    return lines


def _slices(slices: dict[str, Any]) -> list[str]:
    if not slices:
        return []
    lines = ["## Slices", ""]
    for column, values in slices.items():
        lines += [f"### By {_code(column)}", "", "| value | rows | metrics |", "|---|---|---|"]
        for key, report in _dict(values).items():
            r = _dict(report)
            shown = ", ".join(f"{k} {_num(v)}" for k, v in _dict(r.get("metrics")).items())
            small = " (few rows)" if r.get("small") else ""
            lines.append(f"| {_cell(key)} | {_count(r.get('n_rows'))}{small} | {_cell(shown)} |")
        lines.append("")
    return lines


def _limitations(metrics: dict[str, Any]) -> list[str]:
    out = [f"Warning: {_text(w)}" for w in metrics.get("warnings") or [] if isinstance(w, str)]
    generalization = _dict(metrics.get("generalization"))
    verdict = generalization.get("verdict")
    if verdict and verdict != "ok":
        message = generalization.get("message") or ""
        out.append(f"Generalization check: **{_text(verdict)}**. {_text(message)}".rstrip())
    for column, values in _dict(metrics.get("slices")).items():
        small = [str(k) for k, v in _dict(values).items() if _dict(v).get("small")]
        if small:
            shown = ", ".join(_code(s) for s in small[:10])
            more = f" and {len(small) - 10} more" if len(small) > 10 else ""
            out.append(f"Slices of {_code(column)} with too few test rows to judge: {shown}{more}")
    test_rows = _dict(metrics.get("split_sizes")).get("test")
    if isinstance(test_rows, int) and test_rows < SMALL_TEST_ROWS:
        out.append(f"Only {test_rows} test rows: the metrics above are rough; read the intervals.")
    return out


def _history(history: list[AliasEvent]) -> list[str]:
    if not history:
        return []
    lines = [
        "## Alias history",
        "",
        "| when | alias | action | from | to | who | why |",
        "|---|---|---|---|---|---|---|",
    ]
    for e in history:
        lines.append(
            f"| {_when(e.at_ms)} | {_cell(e.alias)} | {e.action} | "
            f"{'-' if e.from_version is None else e.from_version} | "
            f"{'-' if e.to_version is None else e.to_version} | {_cell(e.actor)} | "
            f"{_cell(e.reason or '')} |"
        )
    return [*lines, ""]


# -- text --------------------------------------------------------------------------------------


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _code(value: Any) -> str:
    """``value`` as a CommonMark code span that holds any text (backticks and pipes too)."""
    text = " ".join(str(value).split()) or " "
    runs = [len(r) for r in re.findall(r"`+", text)]
    fence = "`" * (max(runs, default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _text(value: Any) -> str:
    """``value`` as plain Markdown text on one line: nothing in it can start markup."""
    text = " ".join(str(value).split())
    text = _INLINE.sub(r"\\\g<0>", text)
    start = _BLOCK_START.match(text)
    if start is None:
        return text
    cut = start.end() - 1  # escape the marker's last character: "\#", "1\.", "\-"
    return f"{text[:cut]}\\{text[cut:]}"


def _cell(value: Any) -> str:
    return _text(value)


def _params(params: Any) -> str:
    if not isinstance(params, dict) or not params:
        return "default parameters"
    return ", ".join(_code(f"{k}={v}") for k, v in params.items())


def _interval(value: Any) -> str:
    if not isinstance(value, dict):
        return "-"
    low, high = value.get("low"), value.get("high")
    if not _finite(low) or not _finite(high):
        return "-"
    return f"{low:.4f} to {high:.4f}"


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _num(value: Any) -> str:
    return f"{value:.4f}" if _finite(value) else "-"


def _count(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else "-"


def _when(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
