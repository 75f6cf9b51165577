"""HAProxy and nginx configurations for N replicas (issue 20); HAProxy's own checker if present."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shipyard.cli.main import app, run
from shipyard.core.errors import InvalidArgument
from shipyard.serve.balancers import READY_PATH, Upstream, haproxy, nginx

REPLICAS = [Upstream("127.0.0.1", 8001), Upstream("127.0.0.1", 8002), Upstream("10.0.0.3", 8000)]
FRONT = Upstream("127.0.0.1", 8000)


def test_haproxy_checks_readiness_and_retries_predictions_on_another_replica() -> None:
    text = haproxy("churn@production", REPLICAS, listen=FRONT)
    assert "bind 127.0.0.1:8000" in text
    assert f"http-check send meth GET uri {READY_PATH}" in text
    assert "option redispatch 1" in text
    assert "retry-on conn-failure empty-response" in text
    assert "http-request disable-l7-retry unless prediction" in text
    servers = [line.split() for line in text.splitlines() if line.strip().startswith("server ")]
    assert [s[2] for s in servers] == ["127.0.0.1:8001", "127.0.0.1:8002", "10.0.0.3:8000"]
    assert all(s[-1] == "check" for s in servers)


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed")
def test_haproxy_accepts_the_config(tmp_path: Path) -> None:
    path = tmp_path / "haproxy.cfg"
    path.write_text(haproxy("churn@production", REPLICAS, listen=FRONT))
    checked = subprocess.run(
        ["haproxy", "-c", "-f", str(path)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")
def test_nginx_accepts_the_config(tmp_path: Path) -> None:
    path = tmp_path / "nginx.conf"
    path.write_text(nginx("churn@production", REPLICAS, listen=FRONT))
    checked = subprocess.run(
        ["nginx", "-t", "-p", str(tmp_path), "-c", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_nginx_retries_only_predictions_once_sent() -> None:
    text = nginx("churn@production", REPLICAS, listen=FRONT)
    assert "listen 127.0.0.1:8000;" in text
    assert text.count("non_idempotent") == 1
    assert "server 10.0.0.3:8000 max_fails=1 fail_timeout=5s;" in text
    assert text.count("{") == text.count("}")


def test_bad_replicas_and_a_balancer_on_a_replica_are_refused() -> None:
    for bad in ("8001", "host:", "host:0", "host:70000", "a b:1", "x;y:1"):
        with pytest.raises(InvalidArgument, match="replica"):
            Upstream.parse(bad)
    assert Upstream.parse("[::1]:8001") == Upstream("[::1]", 8001)
    with pytest.raises(InvalidArgument, match="at least one"):
        haproxy("m@a", [], listen=FRONT)
    with pytest.raises(InvalidArgument, match="listen"):
        nginx("m@a", [FRONT], listen=FRONT)


def test_export_writes_a_config_for_n_local_replicas(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "deploy"
    args = ["export", "churn@production", "--to", "haproxy", "--replicas", "3", "--out", str(out)]
    result = runner.invoke(app, [*args, "--listen", "127.0.0.1:9000"])
    assert result.exit_code == 0, result.output
    text = (out / "haproxy.cfg").read_text()
    assert "127.0.0.1:9003 check" in text
    assert "127.0.0.1:9004" not in text
    result = runner.invoke(
        app,
        ["export", "churn@production", "--to", "nginx", "--server", "h:1", "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert "server h:1 " in (out / "nginx.conf").read_text()
    with pytest.raises(SystemExit) as refused:
        run(["export", "churn@production", "--to", "traefik", "--out", str(out)])
    assert refused.value.code == 2
