"""A small project for the UI tests: users of each role with tokens, runs, artifacts, a model.

``build(project_dir)`` fills a project folder through the public APIs (tracking, accounts,
registry) and returns what the tests need to know; the page tests open it in-process, the
browser test serves it with a real ``shipyard ui`` process.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path

from shipyard.core.settings import load_settings
from shipyard.security.accounts import Accounts
from shipyard.security.audit_chain import security_store
from shipyard.security.identities import local_identity
from shipyard.security.roles import Role
from shipyard.track.workspace import Workspace
from tests.corpus import XSS_PAYLOADS

PROJECT = "project"
#: A 1x1 PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
HTML_REPORT = b"<html><body><h1>report</h1><script>window.parent.__xss=1</script></body></html>"


@dataclass
class Env:
    """What ``build`` made."""

    project_dir: Path
    tokens: dict[str, str] = field(default_factory=dict)  # role name -> token
    runs: dict[str, str] = field(default_factory=dict)  # run name -> id
    xss_run: str = ""
    long_run: str = ""
    model: str | None = None
    quarantine: str = ""


def open_workspace(project_dir: Path) -> Workspace:
    """The project's workspace, as ``shipyard ui`` run in that folder opens it."""
    return Workspace(
        load_settings(
            project_dir=project_dir,
            tracking={"flush_interval_s": 0.05, "capture_git": False},
        )
    )


def build(project_dir: Path, *, model: bool = False, long_points: int = 5_000) -> Env:
    """Fill ``project_dir`` (see the module docstring); ``model`` also trains and registers one."""
    env = Env(project_dir)
    with open_workspace(project_dir) as workspace:
        accounts = Accounts(security_store(workspace.settings, workspace.store))
        admin = local_identity(PROJECT, source="test")
        for name, role in (
            ("alice", Role.ADMIN),
            ("mel", Role.ML_ENGINEER),
            ("dana", Role.DATA_SCIENTIST),
            ("vic", Role.VIEWER),
        ):
            accounts.create_user(admin, name)
            accounts.grant(admin, name, role, PROJECT)
            env.tokens[str(role)] = accounts.create_token(admin, name).text
        for i, (model_name, lr) in enumerate(
            [("lgbm", "0.1"), ("lgbm", "0.05"), ("logistic", "1.0"), ("xgb", "0.3")]
        ):
            with workspace.start_run(
                f"train-{i}", experiment="churn", params={"model": model_name, "lr": lr}
            ) as run:
                run.set_tags({"team": "growth"})
                run.log_batch(
                    [
                        ("loss", 1.0 / (s + 1) + 0.01 * i, s, 1_700_000_000_000 + s)
                        for s in range(50)
                    ]
                )
                run.log_batch([("auc", 0.7 + 0.05 * i, 49, 1_700_000_000_000)])
                env.runs[f"train-{i}"] = run.run_id
                if i == 0:
                    run.log_artifact(PNG, "plots/roc.png")
                    run.log_artifact(HTML_REPORT, "report.html")
                    run.log_artifact(b"a,b\n1,2\n3,4\n", "sample.csv")
                    with run.child("trial-0", params={"lr": "0.2"}) as child:
                        child.log_batch([("loss", 0.5, 0, 1_700_000_000_000)])
        with workspace.start_run(
            "xss", experiment="churn", params={f"p{i}": v for i, v in enumerate(XSS_PAYLOADS)}
        ) as run:
            run.set_tags({f"t{i}": v for i, v in enumerate(XSS_PAYLOADS)})
            env.xss_run = run.run_id
        for payload in XSS_PAYLOADS:
            workspace.add_note(env.xss_run, payload, author="dana")
        with workspace.start_run("long", experiment="scale") as run:
            run.log_batch(
                [("loss", (s % 97) / 97.0, s, 1_700_000_000_000 + s) for s in range(long_points)]
            )
            env.long_run = run.run_id
        if model:
            env.model = _register(workspace, admin)
        _monitoring(workspace)
        env.quarantine = _quarantine(workspace)
    (project_dir / "shipyard.yaml").write_text(
        "name: project\nbudget:\n  limits:\n    - name: training\n      cpu_hours: 10\n"
        "reviews:\n  default:\n"
        "    production: {approvals: 1, approver_roles: [ml-engineer, admin]}\n"
        "    staging: {approvals: 1}\n",
        encoding="utf-8",
    )
    return env


def _quarantine(workspace: Workspace) -> str:
    """A quarantine version: rows with the checks they failed and an e-mail column."""
    import polars as pl

    from shipyard.data.datasets import write_dataset

    rows = pl.DataFrame(
        {
            "email": ["ann@example.com", "bob@example.com", "eve@example.com"],
            "age": [-3, 250, None],
            "_failed_checks": [["age_range"], ["age_range", "age_type"], ["age_required"]],
        }
    )
    version = write_dataset(
        workspace, rows, name="people", kind="quarantine", pii={"email": "email"}
    )
    return version.dataset_id


def _monitoring(workspace: Workspace) -> None:
    """Drift observations of two features over five windows, and one open alert."""
    from shipyard.store.monitoring import MonitoringStore

    store = MonitoringStore(workspace.store)
    t0 = 1_700_000_000_000
    store.add_observations(
        [
            {
                "model": "churn",
                "version": 1,
                "variant": None,
                "kind": "drift",
                "statistic": "psi",
                "subject": feature,
                "value": 0.05 * w * (2 if feature == "tenure" else 1),
                "window_start_ms": t0 + w * 3_600_000,
                "window_end_ms": t0 + (w + 1) * 3_600_000,
                "threshold": 0.2,
                "breached": 0.05 * w * (2 if feature == "tenure" else 1) > 0.2,
                "detail": {},
                "recorded_ms": t0 + (w + 1) * 3_600_000,
            }
            for feature in ("tenure", "charges")
            for w in range(5)
        ]
    )
    store.raise_alert(
        {
            "rule": "tenure-drift",
            "model": "churn",
            "subject": "tenure",
            "version": 1,
            "variant": None,
            "kind": "drift",
            "statistic": "psi",
            "value": 0.4,
            "threshold": 0.2,
            "comparison": ">",
            "severity": "warning",
            "window": "1h",
            "window_start_ms": t0 + 4 * 3_600_000,
            "window_end_ms": t0 + 5 * 3_600_000,
            "action": "retrain",
        },
        now_ms=t0 + 5 * 3_600_000,
        cooldown_ms=0,
        rate_max=10,
        rate_per_ms=3_600_000,
        notify=False,
    )


def _register(workspace: Workspace, admin: object) -> str:
    """Train two tiny versions, register both, promote the first to production.

    The first sees only ``plan``, so the second (all features) passes the gate against it: a
    promotion request for version 2 opens (the review pages' tests).
    """
    from shipyard.registry.registry import ModelRegistry
    from tests.unit.registry.trained import bundle_file

    registry = ModelRegistry.for_workspace(workspace)
    folder = workspace.settings.project_dir / "bundles"
    folder.mkdir(exist_ok=True)
    for i in range(2):
        features = ["plan"] if i == 0 else None
        path = bundle_file(workspace, folder, name=f"churn{i}", features=features)
        registry.register("churn", path, actor=admin, description="<b>v</b> & co")  # type: ignore[arg-type]
    registry.promote("churn", 1, actor=admin, force=True, reason="first")  # type: ignore[arg-type]
    return "churn"
