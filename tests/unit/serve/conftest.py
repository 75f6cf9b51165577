"""Real trained bundles for the server tests, and a registry stand-in that holds them.

The stand-in answers the three questions a server asks a registry (which version an alias
points to, the bundle of a version, move an alias); the registry itself is tested in
tests/unit/registry, and tests/integration/test_serving.py runs servers on the real one.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from shipyard.registry.bundle import Bundle, read_bundle
from shipyard.registry.packaging import write_training_bundle
from shipyard.train.spec import EstimatorSpec, TrainSpec
from shipyard.train.trainer import train


def churn_frame(n: int = 400, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    plan = rng.choice(["basic", "plus", "pro"], n)
    tenure = rng.integers(1, 60, n).astype(float)
    charges = rng.normal(50, 15, n)
    logit = -0.05 * tenure + 0.03 * (charges - 50) + np.where(plan == "basic", 0.8, -0.4)
    churned = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pl.DataFrame({"tenure": tenure, "charges": charges, "plan": plan, "churned": churned})


def make_bundle(tmp: Path, *, c: float = 1.0, seed: int = 0, name: str = "churn") -> Bundle:
    spec = TrainSpec(
        target="churned",
        estimators=[EstimatorSpec(name="logistic", params={"C": c})],
        tuning={"trials": 1},
        cv={"folds": 2},
        bootstrap_resamples=20,
        explain=False,
        seed=seed,
    )
    result = train(spec, churn_frame(seed=seed))
    path = tmp / f"{name}-{c}-{seed}.shipyard"
    sha = write_training_bundle(
        result,
        path,
        name=name,
        created_at=dt.datetime.now(dt.UTC),
        run_id=None,
        dataset_ids={},
        code_version=None,
    )
    return read_bundle(path, expected_sha256=sha)


@dataclass
class MemorySource:
    bundles: dict[tuple[str, int], Bundle] = field(default_factory=dict)
    aliases: dict[tuple[str, str], int] = field(default_factory=dict)
    promotions: list[tuple[str, str, int, str]] = field(default_factory=list)
    rollbacks: list[tuple[str, str, int, str]] = field(default_factory=list)

    def resolve(self, model: str, alias: str) -> int:
        return self.aliases[(model, alias)]

    def load(self, model: str, version: int) -> Bundle:
        return self.bundles[(model, version)]

    def promote(self, model: str, alias: str, version: int, *, reason: str) -> None:
        self.promotions.append((model, alias, version, reason))
        self.aliases[(model, alias)] = version

    def record_rollback(self, model: str, alias: str, version: int, *, reason: str) -> None:
        self.rollbacks.append((model, alias, version, reason))


@pytest.fixture(scope="session")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Bundle]:
    tmp = tmp_path_factory.mktemp("bundles")
    return {1: make_bundle(tmp, c=1.0), 2: make_bundle(tmp, c=0.01, seed=1)}


@pytest.fixture
def source(bundles: dict[int, Bundle]) -> MemorySource:
    s = MemorySource()
    for version, bundle in bundles.items():
        s.bundles[("churn", version)] = bundle
    s.aliases[("churn", "production")] = 1
    s.aliases[("churn", "challenger")] = 2
    return s
