"""The lifecycle part of ``shipyard demo``: data to a served model, on the embedded workspace.

It writes a small project (a CSV with a few broken lines, a contract, a train section) into
``.shipyard/demo-project``, runs it, registers and promotes the model, shows the gate refusing a
weaker challenger, a forced promotion and a rollback, writes the model card, serves the model
over HTTP on 127.0.0.1 for a few real requests, and batch-scores the CSV. Every step is a real
call of the same code the commands use.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.table import Table

from shipyard.cli.context import console

if TYPE_CHECKING:
    from shipyard.track.workspace import Workspace

PROJECT = """\
name: cancer
sources:
  biopsies:
    uri: data/biopsies.csv
    csv:
      columns: {COLUMNS}
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
"""


def write_project(root: Path) -> None:
    """The demo project: breast-cancer biopsies as a CSV with three broken lines."""
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    (root / "data").mkdir(parents=True, exist_ok=True)
    lines = frame.to_csv(index=False).splitlines()
    lines[5] = lines[5].rsplit(",", 3)[0]  # too few fields: quarantined by the connector
    lines[9] = "-" + lines[9]  # negative radius: quarantined by the contract
    lines.insert(12, "not,a,row")
    (root / "data" / "biopsies.csv").write_text("\n".join(lines) + "\n")
    types = {c: "int64" if c == "target" else "float64" for c in frame.columns}
    columns = "{" + ", ".join(f"{c}: {t}" for c, t in types.items()) + "}"
    (root / "shipyard.yaml").write_text(PROJECT.replace("{COLUMNS}", columns))


def run_lifecycle(workspace_root: Path) -> None:
    """Run every stage and print what happened."""
    from shipyard.cli.project import _print_stages, _print_training
    from shipyard.pipeline.project import load_project
    from shipyard.pipeline.runner import run_pipeline
    from shipyard.registry.card import model_card_html, model_card_markdown
    from shipyard.registry.registry import ModelRegistry
    from shipyard.track.workspace import Workspace

    root = workspace_root / "demo-project"
    if root.exists():  # the demo's own scratch project: start afresh every time
        shutil.rmtree(root)
    write_project(root)
    console.rule("1. data and training: shipyard run")
    with Workspace.open(root) as workspace:
        report = run_pipeline(workspace, load_project(root), on_stage=lambda n, s: None)
        _print_stages(report)
        assert report.training is not None
        _print_training(report.training)
        registry = ModelRegistry(workspace)

        console.rule("2. the gate: a weaker challenger is refused")
        assert report.final_dataset is not None
        weak = _weak_challenger(workspace, root, report.final_dataset)
        refused = registry.promote("cancer", weak.version, actor="demo")
        console.print(f"[red]{escape(refused.describe())}[/]")
        forced = registry.promote(
            "cancer", weak.version, force=True, reason="demo: forced", actor="demo"
        )
        console.print(f"[yellow]{escape(forced.describe())}[/]")
        back = registry.rollback("cancer", actor="demo", reason="demo: the forced model was worse")
        console.print(f"[green]{escape(back.describe())}[/]")
        _history(registry)

        version = registry.get("cancer@production")
        bundle = registry.load(version)
        cards = root / "cards"
        cards.mkdir(exist_ok=True)
        (cards / "cancer.md").write_text(
            model_card_markdown(version, bundle, registry.history("cancer"), plots_dir=None)
        )
        (cards / "cancer.html").write_text(
            model_card_html(version, bundle, registry.history("cancer"))
        )
        console.print(f"model card: {escape(str(cards / 'cancer.html'))}")

        console.rule("3. serving: HTTP on 127.0.0.1, then batch scoring")
        _serve_and_call(workspace, root)
        _batch(registry, root)
    console.print(
        f"\nthe demo project is in {escape(str(root))}; "
        f"try: shipyard -C {escape(str(root))} models list"
    )


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
    outcome = run_training(workspace, spec, dataset_id, project="cancer", project_dir=root)
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve_and_call(workspace: Workspace, root: Path) -> None:
    import httpx
    import uvicorn

    from shipyard.registry.registry import ModelRegistry
    from shipyard.security.accounts import Accounts
    from shipyard.security.identities import local_identity
    from shipyard.serve.app import create_app
    from shipyard.serve.auth import ServerAuth
    from shipyard.serve.prediction_log import PredictionLog, read_prediction_log
    from shipyard.serve.runtime import Runtime
    from shipyard.serve.server import RegistrySource, deploy_from_refs
    from shipyard.store.security import SecurityStore

    logs = root / ".shipyard" / "predictions"
    accounts = Accounts(SecurityStore(workspace.store.engine))
    me = local_identity("project", source="demo")  # the demo's own token, for its own client
    accounts.ensure_user(me, "demo-client", service=True)
    accounts.grant(me, "demo-client", "viewer", "project")
    token = accounts.create_token(me, "demo-client", expires_in_days=1)
    app = create_app(
        Runtime(deploy_from_refs(["cancer@production"]), RegistrySource(ModelRegistry(workspace))),
        auth=ServerAuth(accounts, project="project"),
        prediction_log=PredictionLog(logs),
    )
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    from sklearn.datasets import load_breast_cancer

    sample = load_breast_cancer(as_frame=True).frame.drop(columns="target").head(10)
    sample.columns = [c.replace(" ", "_") for c in sample.columns]
    bearer = {"authorization": f"Bearer {token.text}"}
    with httpx.Client(base_url=url, timeout=10, headers=bearer) as client:
        answers = [
            client.post("/models/cancer/predict", json=[row]).json()
            for row in sample.to_dict(orient="records")
        ]
        bad = client.post("/models/cancer/predict", json=[{"mean_radius": "big"}])
        metadata = client.get("/v2/models/cancer").json()
    server.should_exit = True
    thread.join(timeout=30)
    first = answers[0]
    console.print(
        f"POST /models/cancer/predict → version {first['version']}, "
        f"prediction {first['predictions'][0]}, "
        f"p(1) = {first['probabilities'][0]['1']:.3f}; {len(answers)} requests answered"
    )
    console.print(f"a bad request → {bad.status_code}: {escape(str(bad.json()['detail'][0]))}")
    console.print(
        f"GET /v2/models/cancer → {len(metadata['inputs'])} inputs, versions {metadata['versions']}"
    )
    logged = read_prediction_log(logs).collect().height
    console.print(f"prediction log: {logged} rows written to {escape(str(logs))}")


def _batch(registry: Any, root: Path) -> None:
    from shipyard.serve.batch import score_file

    report = score_file(
        registry.load("cancer@production"), root / "data" / "biopsies.csv", root / "scored.parquet"
    )
    console.print(
        f"batch: {report.rows_in} rows → {report.rows_scored} scored, "
        f"{report.rows_rejected} rejected "
        f"({'conserved' if report.conserved else 'NOT conserved'})"
    )
