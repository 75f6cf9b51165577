"""``shipyard export --to kuberay``: a RayCluster that matches the executor settings."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.unit.cli.running import cli


def test_export_to_kuberay_writes_a_raycluster_from_the_settings(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "shipyard.yaml").write_text(
        "executor:\n  kind: ray\n  workers: 10\n  worker_cpus: 4\n  worker_memory: 8Gi\n"
        "  image: registry.example/shipyard:1.2\n"
    )
    out = tmp_path / "deploy"
    result = cli(capsys, "-C", str(tmp_path), "export", "--to", "kuberay", "--out", str(out))
    assert result.code == 0, result.err
    cluster = yaml.safe_load((out / "raycluster.yaml").read_text())
    assert (cluster["apiVersion"], cluster["kind"]) == ("ray.io/v1", "RayCluster")
    head = cluster["spec"]["headGroupSpec"]
    assert head["rayStartParams"]["include-dashboard"] == "false"
    (workers,) = cluster["spec"]["workerGroupSpecs"]
    assert workers["replicas"] == 10
    assert workers["rayStartParams"]["num-cpus"] == "4"
    container = workers["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example/shipyard:1.2"
    assert container["resources"]["limits"] == {"cpu": "4", "memory": "8Gi"}


def test_export_for_docker_without_a_model_is_a_user_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    result = cli(capsys, "-C", str(tmp_path), "export", "--to", "docker")
    assert result.code == 2
    assert "model@alias" in result.err


def test_an_unknown_executor_is_a_user_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "in.csv"
    source.write_text("a\n1\n")
    result = cli(capsys, "-C", str(tmp_path), "predict", "m@x", str(source), "o.parquet",
                 "--executor", "spark")  # fmt: skip
    assert result.code == 2
    assert "--executor is local or ray" in result.err
