"""The streaming scene of ``shipyard demo``: events in, predictions out, a consumer killed.

It needs Redis (``SHIPYARD_DEMO_REDIS_URL``, default ``redis://127.0.0.1:6379/0``); without it
the scene says so and the demo goes on. The scene adds a ``stream:`` section to the demo
project, XADDs 2,000 scans and one broken event, starts ``shipyard stream run`` as its own
process, SIGKILLs it partway, starts it again, and shows that every event got exactly one
prediction and the broken one a dead letter with its reason. Its keys (``shipyard-demo:*``)
are kept so ``shipyard stream status`` can be tried afterwards, and replaced by the next demo.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import orjson
from rich.markup import escape

from shipyard.cli.context import console
from shipyard.cli.lifecycle_demo import MODEL, biopsies

if TYPE_CHECKING:
    from pathlib import Path

    from shipyard.cli.lifecycle_demo import DemoSummary

PREFIX = "shipyard-demo"
EVENTS = 2_000
KILL_AT = 600  # predictions written before the consumer is SIGKILLed
STREAM_SECTION = f"""
stream:
  url: {{URL}}
  input: {PREFIX}:scans
  group: scorers
  consumer: demo-1
  model: {MODEL}@production
  output: {PREFIX}:predictions
  dead_letters: {PREFIX}:dead
  batch_size: 100
  block_ms: 200
  poll_interval_s: 1
"""
WAIT_S = 120.0  # a consumer's start (model load) on a slow machine, with room to spare


def stream_scene(root: Path, summary: DemoSummary) -> None:
    """Run the scene, or say why it cannot run here."""
    url = os.environ.get("SHIPYARD_DEMO_REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        import redis

        client = redis.Redis.from_url(url, socket_connect_timeout=2)
        client.ping()
    except Exception as e:  # the package missing or the server away: both just skip
        console.print(f"[yellow]skipped: no Redis at {escape(url)} ({type(e).__name__})[/]")
        summary.add("streaming", f"skipped: no Redis at {url}")
        return
    with client:
        _scene(client, url, root, summary)


def _scene(client: Any, url: str, root: Path, summary: DemoSummary) -> None:
    """The scene itself, on a client that answered."""
    _reset(client)
    project_file = root / "shipyard.yaml"
    project_file.write_text(project_file.read_text() + STREAM_SECTION.replace("{URL}", url))
    _send(client)
    console.print(f"{EVENTS:,} scans and 1 broken event XADDed to {PREFIX}:scans")
    first = _consumer(root)
    try:
        _wait(client, lambda: _outputs(client) >= KILL_AT, first, "first predictions")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    console.print(f"[red]consumer SIGKILLed[/] after {_outputs(client):,} predictions")
    second = _consumer(root)
    try:
        _wait(client, lambda: _done(client), second, "the rest")
    finally:
        second.send_signal(signal.SIGTERM)
        code = second.wait(timeout=WAIT_S)
    outputs = _outputs(client)
    ids = {f[b"event_id"] for _, f in client.xrange(f"{PREFIX}:predictions")}
    dead = client.xrange(f"{PREFIX}:dead")
    reason = dead[0][1][b"reason"].decode() if dead else "-"
    console.print(
        f"restarted: {outputs:,} predictions for {len(ids):,} distinct events "
        f"({'none lost, none doubled' if outputs == len(ids) == EVENTS else 'MISMATCH'}); "
        f"SIGTERM drained and exited {code}"
    )
    console.print(f"dead letter: {escape(reason)}")
    if not outputs == len(ids) == EVENTS or code != 0 or len(dead) != 1:
        raise RuntimeError("the streaming scene lost or doubled events: see above")
    console.print(
        f"try: [bold]shipyard -C {escape(str(root))} stream status[/], [bold]stream dead-letters[/]"
    )
    summary.add(
        "streaming",
        f"{EVENTS:,} events → {outputs:,} predictions once each through a SIGKILL; "
        f"{len(dead)} dead letter",
    )


def _reset(client: Any) -> None:
    """Remove the previous demo's streams and state."""
    keys = list(client.scan_iter(match=f"{PREFIX}:*", count=1000))
    for start in range(0, len(keys), 500):
        client.delete(*keys[start : start + 500])


def _send(client: Any) -> None:
    rows = biopsies().drop("target").to_dicts()
    broken = {"event_id": "scan-broken", **rows[0], "mean_texture": "smudged"}
    pipe = client.pipeline(transaction=False)
    for i in range(EVENTS):
        event = {"event_id": f"scan-{i}", **rows[i % len(rows)]}
        pipe.xadd(f"{PREFIX}:scans", {"data": orjson.dumps(event)})
        if i == EVENTS // 2:
            pipe.xadd(f"{PREFIX}:scans", {"data": orjson.dumps(broken)})
    pipe.execute()


def _consumer(root: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-c", "from shipyard.cli.main import run; run()"]
    return subprocess.Popen(
        [*command, "-C", str(root), "stream", "run", "--consumer", "demo-1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _outputs(client: Any) -> int:
    return int(client.xlen(f"{PREFIX}:predictions"))


def _done(client: Any) -> bool:
    if _outputs(client) < EVENTS or client.xlen(f"{PREFIX}:dead") < 1:
        return False
    groups = client.xinfo_groups(f"{PREFIX}:scans")
    return all(int(g.get("pending", 0)) == 0 for g in groups)


def _wait(client: Any, ready: Any, process: subprocess.Popen[bytes], what: str) -> None:
    """Poll until ``ready()``; fail with the consumer's own words if it died or stalled."""
    deadline = time.monotonic() + WAIT_S
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            if process.poll() is None:
                process.kill()
            _, err = process.communicate()
            raise RuntimeError(
                f"the demo consumer did not deliver {what}: {err.decode(errors='replace')[-2000:]}"
            )
        time.sleep(0.05)
