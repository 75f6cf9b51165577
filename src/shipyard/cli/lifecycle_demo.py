"""The lifecycle part of ``shipyard demo``: two sources to a served, watched, retrained model.

It writes a small project into ``.shipyard/demo-project``: breast-cancer biopsies split between
a CSV file (with three broken lines) and a clinic's SQLite table (other column names), harmonized,
combined, validated with a quarantine, then trained with cross-validation and tuning. Then, each
step a real call of the same code the commands use:

1. ``shipyard run``: ingest, harmonize, validate, train, register, promote;
2. the gate refuses a weaker challenger; a forced promotion and a rollback; the model card;
3. ``shipyard serve`` on 127.0.0.1 with its own API token: a few calls, a bad request;
4. traffic replayed over HTTP, with the scanner "recalibrated" halfway (injected drift), and
   the ground truth sent back as feedback labels;
5. ``shipyard monitor run --once``: drift found on the recalibrated features, an alert, a
   retrain on the clinic's new labelled scans, and the gate deciding the alias;
6. batch scoring, the HTML monitoring report, and what it all cost;
7. ``shipyard stream run`` over Redis Streams: a consumer SIGKILLed and restarted, every
   event scored exactly once, a broken event in the dead letters.
"""

from __future__ import annotations

import contextlib
import functools
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
from rich.markup import escape
from rich.table import Table

from shipyard.cli.context import console

if TYPE_CHECKING:
    import httpx

    from shipyard.security.identities import Identity
    from shipyard.track.workspace import Workspace

MODEL = "cancer"
CLINIC_NAMES = {"mean_radius": "radius_mean", "mean_texture": "texture_mean"}
"""The clinic's database names two columns its own way; ``harmonize.rename`` maps them back."""
CSV_ROWS = 380

PROJECT = """\
name: cancer
sources:
  biopsies:
    uri: data/biopsies.csv
    csv:
      columns: {COLUMNS}
  clinic:
    uri: sqlite:///{DATABASE}
    table: scans
    harmonize:
      rename: {RENAME}
combine:
  union: [biopsies, clinic]
contract:
  policy: quarantine
  columns:
    mean_radius: {type: float64, nullable: false, min: 0}
    mean_texture: {type: float64, nullable: false, min: 0}
    target: {type: int64, nullable: false, allowed: [0, 1]}
train:
  target: target
  metric: roc_auc
  estimators:
    - name: logistic
      space: {C: {low: 0.001, high: 100.0, log: true}}
    - name: hist_gradient_boosting
      space: {learning_rate: {low: 0.02, high: 0.3, log: true}, max_iter: [50, 100]}
  tuning: {trials: 8}
  cv: {folds: 3}
  bootstrap_resamples: 300
  register: {model: cancer, promote_to: production}
monitor:
  notifiers:
    log: {type: log}
  rules:
    - name: input-drift
      statistic: psi
      feature: "*"
      above: 0.25
      window: 300 rows
      severity: critical
      action: retrain
    - name: accuracy-drop
      metric: accuracy
      below: 0.9
      severity: warning
"""


@dataclass
class DemoSummary:
    """What the demo did, for the closing table."""

    rows: list[tuple[str, str]] = field(default_factory=list)
    paths: list[tuple[str, Path]] = field(default_factory=list)

    def add(self, step: str, result: str) -> None:
        """Record one step's outcome."""
        self.rows.append((step, result))


@functools.cache
def biopsies() -> pl.DataFrame:
    """scikit-learn's breast-cancer data with column names fit for a project file (read once)."""
    from sklearn.datasets import load_breast_cancer

    frame = pl.from_pandas(load_breast_cancer(as_frame=True).frame)
    return frame.rename({c: c.replace(" ", "_") for c in frame.columns})


def write_project(root: Path) -> None:
    """The demo project: a CSV with three broken lines and the clinic's SQLite table."""
    import sqlite3

    from shipyard.cli.demo_monitoring import insert_rows

    frame = biopsies()
    (root / "data").mkdir(parents=True, exist_ok=True)
    lines = frame.head(CSV_ROWS).write_csv().splitlines()
    lines[5] = lines[5].rsplit(",", 3)[0]  # too few fields: quarantined by the connector
    lines[9] = "-" + lines[9]  # negative radius: quarantined by the contract
    lines.insert(12, "not,a,row")
    (root / "data" / "biopsies.csv").write_text("\n".join(lines) + "\n")

    database = (root / "data" / "clinic.db").resolve()
    clinic = frame.slice(CSV_ROWS).rename(CLINIC_NAMES)
    columns = ", ".join(
        '"{}" {} NOT NULL'.format(c.replace('"', '""'), "INTEGER" if c == "target" else "FLOAT")
        for c in clinic.columns
    )
    with contextlib.closing(sqlite3.connect(database)) as connection, connection:
        connection.execute(f"CREATE TABLE scans ({columns})")
    insert_rows(database, "scans", clinic)

    types = {c: "int64" if c == "target" else "float64" for c in frame.columns}
    project = (
        PROJECT.replace("{COLUMNS}", "{" + ", ".join(f"{c}: {t}" for c, t in types.items()) + "}")
        .replace("{DATABASE}", str(database))
        .replace("{RENAME}", "{" + ", ".join(f"{v}: {k}" for k, v in CLINIC_NAMES.items()) + "}")
    )
    (root / "shipyard.yaml").write_text(project)


def demo_operator() -> Identity:
    """Who the demo acts as: the local operator (admin) of its own scratch workspace.

    The demo builds that workspace in a folder of the person running it, like any command on
    an embedded workspace without a token; ``shipyard demo`` itself needs ``runs.write``.
    """
    from shipyard.security.identities import local_identity

    return local_identity("project", source="demo")


def run_lifecycle(workspace_root: Path) -> DemoSummary:
    """Run every stage, print what happened, and end with a summary table."""
    from shipyard.cli.demo_serving import first_calls, served, traffic_scene
    from shipyard.cli.project import print_stages, print_training
    from shipyard.pipeline.project import load_project
    from shipyard.pipeline.runner import run_pipeline
    from shipyard.registry.registry import ModelRegistry
    from shipyard.track.workspace import Workspace

    started = time.monotonic()
    summary = DemoSummary()
    root = workspace_root / "demo-project"
    if root.exists():  # the demo's own scratch project: start afresh every time
        shutil.rmtree(root)
    write_project(root)
    console.rule("1. data and training: shipyard run (CSV + SQLite → harmonize → validate → train)")
    with Workspace.open(root) as workspace:
        report = run_pipeline(
            workspace, load_project(root), actor=demo_operator(), on_stage=lambda n, s: None
        )
        print_stages(report)
        assert report.training is not None
        print_training(report.training)
        validated = next((s for s in report.stages if s.name == "validate"), None)
        quarantined = sum(s.rows_quarantined for s in report.stages)
        summary.add(
            "data",
            f"2 sources, {validated.rows_out if validated else '?'} rows validated, "
            f"{quarantined} quarantined with reasons",
        )
        registry = ModelRegistry.for_workspace(workspace)
        first = registry.get(f"{MODEL}@production")
        summary.add("train + register", f"{MODEL} version {first.version} → production")

        console.rule("2. the gate: a weaker challenger is refused")
        assert report.final_dataset is not None
        weak = _weak_challenger(workspace, root, report.final_dataset)
        refused = registry.promote(MODEL, weak.version, actor=demo_operator())
        console.print(f"[red]{escape(refused.describe())}[/]")
        forced = registry.promote(
            MODEL, weak.version, force=True, reason="demo: forced", actor=demo_operator()
        )
        console.print(f"[yellow]{escape(forced.describe())}[/]")
        back = registry.rollback(
            MODEL, actor=demo_operator(), reason="demo: the forced model was worse"
        )
        console.print(f"[green]{escape(back.describe())}[/]")
        _history(registry)
        summary.add("gate", f"version {weak.version} refused; forced, then rolled back")
        summary.paths.append(("model card", _write_card(registry, root)))

        console.rule("3. serving: HTTP on 127.0.0.1 with an API token")
        with served(workspace, root) as client:
            first_calls(client, summary)

            console.rule("4. traffic: the scanner is recalibrated halfway (injected drift)")
            traffic_scene(client, summary)

            console.rule("5. monitoring: drift → alert → retrain → gate")
            _monitor(workspace, root, client, summary)

        console.rule("6. batch scoring, the monitoring report and the cost")
        _batch(registry, root, summary)
        summary.paths.append(("monitoring report", _report(workspace, root)))
        _cost(workspace, summary)

        console.rule("7. streaming: events in, predictions out, a consumer killed and resumed")
        from shipyard.cli.demo_streaming import stream_scene

        stream_scene(root, summary)
    _print_summary(summary, root, time.monotonic() - started)
    return summary


def _write_card(registry: Any, root: Path) -> Path:
    from shipyard.registry.card import model_card_html, model_card_markdown

    version = registry.get(f"{MODEL}@production")
    bundle = registry.load(version)
    cards = root / "cards"
    cards.mkdir(exist_ok=True)
    history = registry.history(MODEL)
    (cards / f"{MODEL}.md").write_text(
        model_card_markdown(version, bundle, history, plots_dir=None)
    )
    (cards / f"{MODEL}.html").write_text(model_card_html(version, bundle, history))
    console.print(f"model card: {escape(str(cards / f'{MODEL}.html'))}")
    return cards / f"{MODEL}.html"


def _weak_challenger(workspace: Workspace, root: Path, dataset_id: str) -> Any:
    """Train a deliberately weak model (two features) and register it as the next version."""
    from shipyard.pipeline.training import run_training
    from shipyard.train.spec import TrainSpec

    spec = TrainSpec.model_validate(
        {
            "target": "target",
            "features": ["mean_texture", "mean_symmetry"],
            "estimators": [{"name": "logistic"}],
            "tuning": {"trials": 1},
            "cv": {"folds": 3},
            "bootstrap_resamples": 100,
            "explain": False,
            "register": {"model": "cancer"},
        }
    )
    outcome = run_training(
        workspace, spec, dataset_id, actor=demo_operator(), project="cancer", project_dir=root
    )
    assert outcome.version is not None
    return outcome.version


def _history(registry: Any) -> None:
    table = Table(title="cancer@production history")
    for column in ("action", "from", "to", "who", "why", "gate"):
        table.add_column(column)
    for e in registry.history("cancer", "production"):
        gate = "-"
        if e.gate is not None:
            holder = e.gate.get("champion_score")
            shown = "-" if holder is None else f"{holder:.4f}"
            gate = f"{e.gate['candidate_score']:.4f} vs {shown}"
        table.add_row(
            e.action,
            str(e.from_version or "-"),
            str(e.to_version),
            e.actor,
            escape(e.reason or ""),
            gate,
        )
    console.print(table)


def _monitor(workspace: Workspace, root: Path, client: httpx.Client, summary: DemoSummary) -> None:
    from shipyard.cli.demo_monitoring import add_new_scans, monitor_once
    from shipyard.cli.monitor_run import print_pass

    added = add_new_scans(
        root / "data" / "clinic.db", biopsies().sample(n=250, seed=11), CLINIC_NAMES
    )
    console.print(f"the clinic adds {added} labelled scans from the recalibrated scanner")
    result = monitor_once(workspace, root)
    print_pass(result)
    drifted = ", ".join(result.drifted_features) or "none"
    summary.add("drift", f"flagged: {drifted}")
    summary.add("alerts", ", ".join(sorted({a.rule for a in result.evaluation.opened})) or "none")
    for outcome in result.retrains:
        numbers = outcome.numbers
        scores = ""
        if "candidate_score" in numbers and "holder_score" in numbers:
            scores = f" (roc_auc {numbers['candidate_score']:.4f} vs {numbers['holder_score']:.4f})"
        summary.add("retrain + gate", outcome.text + scores)
        if outcome.promoted:
            from shipyard.cli.demo_serving import answered_by_new_version

            answered_by_new_version(client, outcome.version)


def _batch(registry: Any, root: Path, summary: DemoSummary) -> None:
    from shipyard.serve.batch import score_file

    report = score_file(
        registry.load(f"{MODEL}@production"),
        root / "data" / "biopsies.csv",
        root / "scored.parquet",
    )
    console.print(
        f"batch: {report.rows_in} rows → {report.rows_scored} scored, "
        f"{report.rows_rejected} rejected "
        f"({'conserved' if report.conserved else 'NOT conserved'})"
    )
    summary.add("batch", f"{report.rows_scored} scored, {report.rows_rejected} rejected")
    summary.paths.append(("batch scores", root / "scored.parquet"))


def _report(workspace: Workspace, root: Path) -> Path:
    from shipyard.monitor.logfiles import read_prediction_log
    from shipyard.monitor.report import build_report
    from shipyard.store.monitoring import MonitoringStore

    probabilities = (
        read_prediction_log(root / ".shipyard" / "predictions")
        .select("probability")
        .drop_nulls()
        .collect()
        .get_column("probability")
        .to_list()
    )
    report = build_report(
        MonitoringStore(workspace.store),
        MODEL,
        probabilities=probabilities,
        now_ms=workspace.clock.now_ms(),
    )
    path = root / "reports" / f"{MODEL}-monitoring.html"
    path.parent.mkdir(exist_ok=True)
    path.write_text(report.html, encoding="utf-8")
    console.print(f"monitoring report: {escape(str(path))} ({report.observations} observations)")
    return path


def _cost(workspace: Workspace, summary: DemoSummary) -> None:
    from shipyard.cost.attribution import group_costs, total_cost
    from shipyard.cost.catalog import active_instance, catalog_for

    catalog = catalog_for(workspace.settings)
    active = active_instance(workspace.settings, catalog)
    runs = workspace.search_runs(limit=None)
    table = Table(title=f"cost on {active.instance.name} ({active.purchase}, CPU share)")
    table.add_column("experiment")
    table.add_column("CPU s", justify="right")
    table.add_column(catalog.currency, justify="right")
    for name, cost in sorted(group_costs(runs, active, "experiment").items()):
        table.add_row(escape(name), f"{cost.seconds:.1f}", f"{cost.usd:.6f}")
    console.print(table)
    total = total_cost(runs, active)
    console.print(f"[dim]{escape(catalog.label())}[/]")
    summary.add("cost", f"{total.usd:.5f} {catalog.currency} for {total.seconds:.0f} CPU-seconds")


def _print_summary(summary: DemoSummary, root: Path, seconds: float) -> None:
    table = Table(title=f"the lifecycle in {seconds:.0f} s")
    table.add_column("step")
    table.add_column("result")
    for step, result in summary.rows:
        table.add_row(step, escape(result))
    console.print(table)
    for what, path in summary.paths:
        console.print(f"{what}: {escape(str(path))}")
    console.print(
        f"the demo project is in {escape(str(root))}; try: "
        f"shipyard -C {escape(str(root))} models list | monitor alerts | cost report"
    )
