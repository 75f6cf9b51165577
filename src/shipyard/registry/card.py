"""Model cards: what a version is for, where it came from, how good it is and where it is not.

Built from what the registry already holds (the version row, the bundle's manifest and plots,
the alias history), so a card can never disagree with the model it describes. Markdown for
repositories and reviews; HTML (rendered by markdown-it with raw HTML off, plots inlined as
data URIs) for people who just want to open a file.
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shipyard.registry.bundle import Bundle
    from shipyard.store.registry import AliasEvent, ModelVersion

_NOT_VALIDATED = (
    "The model was validated only on rows like its training data (same sources, same period). "
    "It was not checked for fairness across groups beyond the slices listed, for data from "
    "other periods or populations, or for adversarial inputs; monitor drift before trusting it "
    "on new data."
)


def model_card_markdown(
    version: ModelVersion,
    bundle: Bundle,
    history: list[AliasEvent],
    *,
    plots_dir: str | None = "plots",
) -> str:
    """Render the card; plots are referenced under ``plots_dir`` (None: left out)."""
    m = bundle.manifest
    metrics = m.metrics
    lines = [f"# Model card: {version.name} version {version.version}", ""]
    lines += [
        "## Intended use",
        "",
        version.description or f"Predicts `{m.target}` ({m.task}).",
        "",
    ]
    lines += [
        "## Model",
        "",
        f"- Task: {m.task}; target `{m.target}`"
        + (f"; classes {', '.join(map(str, m.classes))}" if m.classes else ""),
        f"- Estimator: {metrics.get('estimator', '?')} with {_params(metrics.get('params'))}",
        f"- Features ({len(m.features)}): "
        + ", ".join(f"`{f.name}` ({f.dtype})" for f in m.features),
        "- Decision threshold: "
        + ("default (0.5)" if m.threshold is None else f"{m.threshold:.4f}"),
        f"- Bundle sha256 `{version.bundle_sha256}`; "
        f"registered by {version.created_by} at {_when(version.created_ms)}",
        "",
        "## Data lineage",
        "",
        f"- Training run: `{m.lineage.run_id or version.run_id or '-'}`; "
        f"code version `{m.lineage.code_version or '-'}`",
        f"- Spec hash `{(m.lineage.spec_hash or '-')[:16]}`, seed {m.lineage.seed}",
    ]
    lines += [f"- Dataset ({role}): `{ds}`" for role, ds in sorted(m.lineage.dataset_ids.items())]
    splits = metrics.get("split_sizes") or {}
    if splits:
        lines.append("- Rows: " + ", ".join(f"{k} {v:,}" for k, v in splits.items()))
    lines += [
        "",
        "## Test metrics (95% bootstrap intervals)",
        "",
        "| metric | value | interval |",
        "|---|---|---|",
    ]
    for name, value in (metrics.get("test") or {}).items():
        lines.append(f"| {name} | {_num(value.get('value'))} | {_interval(value)} |")
    scores = metrics.get("scores") or {}
    if scores:
        lines += [
            "",
            f"Primary metric `{m.primary_metric}`: train {_num(scores.get('train'))}, "
            f"cross-validation {_num(scores.get('cv_mean'))} ± {_num(scores.get('cv_std'))}, "
            f"validation {_num(scores.get('validation'))}, test {_num(scores.get('test'))}.",
        ]
    lines += _slices(metrics.get("slices") or {})
    if plots_dir is not None and bundle.plots():
        lines += ["", "## Plots", ""]
        lines += [f"![{name}]({plots_dir}/{name})" for name in sorted(bundle.plots())]
    lines += ["", "## Limitations", ""]
    lines += [f"- {text}" for text in _limitations(metrics)]
    lines.append(f"- {_NOT_VALIDATED}")
    if history:
        lines += [
            "",
            "## Alias history",
            "",
            "| when | alias | action | from | to | who | why |",
            "|---|---|---|---|---|---|---|",
        ]
        for e in history:
            lines.append(
                f"| {_when(e.at_ms)} | {e.alias} | {e.action} | {e.from_version or '-'} | "
                f"{e.to_version or '-'} | {_cell(e.actor)} | {_cell(e.reason or '')} |"
            )
    return "\n".join(lines) + "\n"


def model_card_html(version: ModelVersion, bundle: Bundle, history: list[AliasEvent]) -> str:
    """Render the card as one self-contained HTML page (user text escaped, plots inlined)."""
    from markdown_it import MarkdownIt

    text = model_card_markdown(version, bundle, history, plots_dir=None)
    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(text)
    images = "".join(
        f'<figure><img alt="{name}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'
        f"<figcaption>{name}</figcaption></figure>"
        for name, png in sorted(bundle.plots().items())
    )
    title = f"{version.name} v{version.version}".replace("<", "&lt;")
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>Model card: {title}</title>"
        "<style>body{font-family:sans-serif;max-width:60rem;margin:2rem auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2rem .5rem}"
        "img{max-width:28rem}figure{display:inline-block}</style></head><body>"
        f"{body}{'<h2>Plots</h2>' + images if images else ''}</body></html>"
    )


def _limitations(metrics: dict[str, Any]) -> list[str]:
    out = []
    generalization = metrics.get("generalization") or {}
    verdict = generalization.get("verdict")
    if verdict and verdict != "ok":
        out.append(f"Generalization check: **{verdict}** — {generalization.get('message', '')}")
    for column, values in (metrics.get("slices") or {}).items():
        small = [str(k) for k, v in values.items() if isinstance(v, dict) and v.get("small")]
        if small:
            out.append(
                f"Slices of `{column}` with too few test rows to judge: {', '.join(small[:10])}"
            )
    return out


def _slices(slices: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for column, values in slices.items():
        lines += ["", f"### By `{column}`", "", "| value | rows | metrics |", "|---|---|---|"]
        for key, report in values.items():
            shown = ", ".join(f"{k} {_num(v)}" for k, v in (report.get("metrics") or {}).items())
            lines.append(f"| {_cell(str(key))} | {report.get('n_rows', '?')} | {shown} |")
    return lines


def _params(params: Any) -> str:
    if not params:
        return "default parameters"
    return ", ".join(f"{k}={v}" for k, v in dict(params).items())


def _interval(value: dict[str, Any]) -> str:
    low, high = value.get("low"), value.get("high")
    return "-" if low is None or high is None else f"{low:.4f} to {high:.4f}"


def _num(value: Any) -> str:
    return "-" if not isinstance(value, int | float) else f"{value:.4f}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _when(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
