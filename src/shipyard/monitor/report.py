"""``shipyard monitor report``: one self-contained HTML page about a served model's health.

People look at drift and performance over time, not at rows of numbers, so the report is mostly
plots, drawn from what the monitors stored (``ObservationHistory``) and the alerts table: drift
statistics per feature over time with their thresholds, the prediction distribution, rolling
performance with its confidence band against the bundle's test baseline, and every alert in the
period. Images are PNGs inlined as ``data:`` URIs, so the file can be mailed or attached to a
ticket and opened anywhere without Shipyard or a network.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from shipyard.monitor.history import ObservationHistory

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np
    from numpy.typing import NDArray

    from shipyard.store.monitoring import AlertRecord, MonitoringStore

DRIFT_STATISTICS = ("psi", "ks", "jensen_shannon", "wasserstein", "missing_rate")
PREDICTION_SUBJECT = "__prediction__"
_MAX_FEATURE_LINES = 12
_PERFORMANCE_SCHEMA: dict[str, pl.DataType] = {
    "version": pl.Int64(),
    "statistic": pl.String(),
    "value": pl.Float64(),
    "threshold": pl.Float64(),
    "window_end_ms": pl.Int64(),
    "low": pl.Float64(),
    "high": pl.Float64(),
}


@dataclass(frozen=True)
class MonitorReport:
    """The rendered page and what it covered (for the CLI's summary line)."""

    html: str
    observations: int
    alerts: int
    drifted_features: tuple[str, ...]


def build_report(
    store: MonitoringStore,
    model: str,
    *,
    since_ms: int | None = None,
    until_ms: int | None = None,
    probabilities: Sequence[float] | None = None,
    now_ms: int,
) -> MonitorReport:
    """Render the report of ``model`` over ``[since_ms, until_ms)`` (all history by default).

    ``probabilities`` (positive-class probabilities from the prediction log) adds a histogram of
    what the model answered; the monitors' own ``__prediction__`` drift series is plotted
    either way.
    """
    history = ObservationHistory(store)
    frame = history.frame(model=model, since_ms=since_ms, until_ms=until_ms)
    performance = pl.DataFrame(
        [
            {
                "version": o.version,
                "statistic": o.statistic,
                "value": o.value,
                "threshold": o.threshold,
                "window_end_ms": o.window_end_ms,
                "low": _float(o.detail.get("low")),
                "high": _float(o.detail.get("high")),
            }
            for o in history.query(
                model=model, kind="performance", since_ms=since_ms, until_ms=until_ms
            )
        ],
        schema=_PERFORMANCE_SCHEMA,
        orient="row",
    )
    alerts = store.alerts(model=model, since_ms=since_ms, limit=500)
    drift = frame.filter(pl.col("kind") == "drift")
    drifted = tuple(
        sorted(
            drift.filter(pl.col("breached") & (pl.col("subject") != PREDICTION_SUBJECT))
            .get_column("subject")
            .unique()
            .to_list()
        )
    )
    sections = [
        _header(model, frame, since_ms, until_ms, now_ms),
        _drift_section(drift, drifted),
        _prediction_section(drift, probabilities),
        _performance_section(performance),
        _events_section(frame.filter(pl.col("kind").is_in(["concept", "anomaly", "service"]))),
        _alerts_section(alerts),
    ]
    page = (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(model)} — monitoring report</title><style>{_CSS}</style></head>"
        f"<body>{''.join(sections)}</body></html>\n"
    )
    return MonitorReport(page, frame.height, len(alerts), drifted)


# -- sections ---------------------------------------------------------------------------------


def _header(
    model: str, frame: pl.DataFrame, since: int | None, until: int | None, now_ms: int
) -> str:
    if frame.height:
        since = since if since is not None else int(frame["window_start_ms"].min())  # type: ignore[arg-type]
        until = until if until is not None else int(frame["window_end_ms"].max())  # type: ignore[arg-type]
    period = f"{_utc(since)} to {_utc(until)}" if since and until else "no observations yet"
    versions = sorted(v for v in frame["version"].unique().to_list() if v is not None)
    return (
        f"<h1>{html.escape(model)}: monitoring report</h1>"
        f"<p class='meta'>Period: {period}. Versions seen: "
        f"{', '.join(map(str, versions)) or 'none'}. {frame.height} observations. "
        f"Generated {_utc(now_ms)}.</p>"
    )


def _drift_section(drift: pl.DataFrame, drifted: tuple[str, ...]) -> str:
    if drift.is_empty():
        return "<h2>Drift</h2><p>No drift observations in this period.</p>"
    parts = ["<h2>Drift per feature over time</h2>"]
    if drifted:
        parts.append(
            "<p class='bad'>Drift flagged on: "
            + ", ".join(f"<code>{html.escape(f)}</code>" for f in drifted)
            + "</p>"
        )
    else:
        parts.append("<p class='good'>No feature crossed its threshold.</p>")
    features = drift.filter(pl.col("subject") != PREDICTION_SUBJECT)
    for statistic in DRIFT_STATISTICS:
        series = features.filter(pl.col("statistic") == statistic)
        if series.is_empty():
            continue
        parts.append(_img(_series_plot(series, statistic, highlight=drifted), statistic))
    parts.append(_latest_table(features))
    parts.append(
        "<p class='note'>Multiple testing: every window runs one test per feature and "
        "statistic, so some crossings happen by chance. KS p-values are Bonferroni-corrected "
        "over the features of a window; PSI and Jensen-Shannon thresholds are effect sizes, "
        "not tests. Act on drift that persists over several windows or that the performance "
        "monitor confirms.</p>"
    )
    return "".join(parts)


def _prediction_section(drift: pl.DataFrame, probabilities: Sequence[float] | None) -> str:
    series = drift.filter(pl.col("subject") == PREDICTION_SUBJECT)
    if series.is_empty() and not probabilities:
        return ""
    parts = ["<h2>Prediction distribution</h2>"]
    if probabilities:
        figure = Figure(figsize=(7, 3))
        ax = figure.subplots()
        ax.hist(list(probabilities), bins=20, range=(0.0, 1.0), color="#4477aa")
        ax.set_xlabel("positive-class probability")
        ax.set_ylabel("requests")
        parts.append(_img(_png(figure), "prediction histogram"))
    for statistic in series["statistic"].unique(maintain_order=True).to_list():
        one = series.filter(pl.col("statistic") == statistic)
        parts.append(_img(_series_plot(one, f"{statistic} of the predictions"), statistic))
    return "".join(parts)


def _performance_section(perf: pl.DataFrame) -> str:
    if perf.is_empty():
        return (
            "<h2>Performance</h2><p>No feedback labels joined in this period: send labels "
            "with <code>POST /models/{name}/feedback</code> or "
            "<code>shipyard monitor feedback FILE</code>.</p>"
        )
    parts = ["<h2>Performance on feedback labels</h2>"]
    for statistic in perf["statistic"].unique(maintain_order=True).to_list():
        one = perf.filter(pl.col("statistic") == statistic).sort("window_end_ms")
        figure = Figure(figsize=(7, 3))
        ax = figure.subplots()
        for (version,), group in one.group_by(["version"], maintain_order=True):
            x = _times(group["window_end_ms"])
            ax.plot(x, group["value"].to_list(), marker="o", label=f"v{version}")
            band = group.drop_nulls(["low", "high"])
            if band.height:
                ax.fill_between(
                    _times(band["window_end_ms"]),
                    band["low"].to_list(),
                    band["high"].to_list(),
                    alpha=0.2,
                )
        baseline = one["threshold"].drop_nulls()
        if baseline.len():
            ax.axhline(float(baseline[-1]), color="grey", linestyle="--", label="test baseline")
        ax.set_title(statistic)
        ax.legend(loc="best", fontsize="small")
        figure.autofmt_xdate()
        parts.append(_img(_png(figure), statistic))
    return "".join(parts)


def _events_section(events: pl.DataFrame) -> str:
    fired = events.filter(pl.col("breached"))
    if fired.is_empty():
        return ""
    rows = "".join(
        f"<tr><td>{_utc(r['window_end_ms'])}</td><td>{html.escape(r['kind'])}</td>"
        f"<td>{html.escape(r['statistic'])}</td><td>{html.escape(r['subject'])}</td>"
        f"<td>{_num(r['value'])}</td></tr>"
        for r in fired.sort("window_end_ms").iter_rows(named=True)
    )
    return (
        "<h2>Concept drift and anomalies</h2><table><tr><th>at</th><th>kind</th>"
        f"<th>detector</th><th>subject</th><th>value</th></tr>{rows}</table>"
    )


def _alerts_section(alerts: Sequence[AlertRecord]) -> str:
    if not alerts:
        return "<h2>Alerts</h2><p>No alerts in this period.</p>"
    rows = []
    for a in alerts:
        outcome = (a.outcome or {}).get("text", "")
        rows.append(
            f"<tr class='{html.escape(a.severity)}'><td>{_utc(a.first_seen_ms)}</td>"
            f"<td>{html.escape(a.severity)}</td><td>{html.escape(a.rule)}</td>"
            f"<td>{html.escape(a.statistic)} of {html.escape(a.subject)}</td>"
            f"<td>{_num(a.value)} vs {_num(a.threshold)}</td><td>{a.repeat_count}</td>"
            f"<td>{html.escape(a.action)}</td><td>{html.escape(str(outcome))}</td></tr>"
        )
    return (
        f"<h2>Alerts ({len(alerts)})</h2><table><tr><th>first seen</th><th>severity</th>"
        "<th>rule</th><th>what</th><th>value</th><th>repeats</th><th>action</th>"
        f"<th>outcome</th></tr>{''.join(rows)}</table>"
    )


# -- plots and helpers ------------------------------------------------------------------------


def _series_plot(series: pl.DataFrame, title: str, *, highlight: tuple[str, ...] = ()) -> bytes:
    figure = Figure(figsize=(7, 3.2))
    ax = figure.subplots()
    subjects = series["subject"].unique(maintain_order=True).to_list()
    # Drifted features first, so they are the ones drawn when there are too many to show.
    subjects.sort(key=lambda s: (s not in highlight, s))
    for subject in subjects[:_MAX_FEATURE_LINES]:
        one = series.filter(pl.col("subject") == subject).sort("window_end_ms")
        strong = subject in highlight
        ax.plot(
            _times(one["window_end_ms"]),
            one["value"].to_list(),
            label=subject,
            linewidth=2.5 if strong else 1.0,
            alpha=1.0 if strong else 0.7,
        )
    thresholds = series["threshold"].drop_nulls()
    if thresholds.len():
        ax.axhline(float(thresholds.median()), color="red", linestyle=":", label="threshold")  # type: ignore[arg-type]
    ax.set_title(title)
    if subjects:
        ax.legend(loc="upper left", fontsize="x-small", ncol=2)
    figure.autofmt_xdate()
    return _png(figure)


def _latest_table(features: pl.DataFrame) -> str:
    if features.is_empty():
        return ""
    last_end = features["window_end_ms"].max()
    latest = features.filter(pl.col("window_end_ms") == last_end)
    wide = latest.pivot(on="statistic", index="subject", values="value", aggregate_function="last")
    breached = set(latest.filter(pl.col("breached")).get_column("subject").unique().to_list())
    columns = [c for c in wide.columns if c != "subject"]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        f"<tr class='{'critical' if row['subject'] in breached else ''}'>"
        f"<td>{html.escape(row['subject'])}</td>"
        + "".join(f"<td>{_num(row[c])}</td>" for c in columns)
        + "</tr>"
        for row in wide.sort("subject").iter_rows(named=True)
    )
    return (
        f"<h3>Latest window (ending {_utc(int(last_end))})</h3>"  # type: ignore[arg-type]
        f"<table><tr><th>feature</th>{head}</tr>{body}</table>"
    )


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _times(values: pl.Series) -> NDArray[np.datetime64]:
    return values.to_numpy().astype("datetime64[ms]")


def _png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, metadata={"Software": None})
    return buffer.getvalue()


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f"<figure><img alt='{html.escape(alt)}' src='data:image/png;base64,{data}'></figure>"


def _utc(ms: int | None) -> str:
    if ms is None:
        return "—"
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _num(value: Any) -> str:
    if value is None:
        return "—"
    return f"{value:.4g}" if isinstance(value, float) else html.escape(str(value))


_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;color:#222}"
    "table{border-collapse:collapse;margin:1em 0;font-size:.9em}"
    "td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}"
    "tr.critical td{background:#fde0e0}tr.warning td{background:#fff4d6}"
    ".meta,.note{color:#555}.bad{color:#b00020;font-weight:600}.good{color:#1b7a1b}"
    "figure{margin:1em 0}img{max-width:100%}"
)
