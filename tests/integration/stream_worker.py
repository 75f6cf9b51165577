"""A consumer process for the stream fault tests, started from a forkserver (no import cost).

``consume`` runs in its own process: it opens the workspace, follows ``churn@production`` and
consumes until SIGTERM (which drains and exits 0) or until a test SIGKILLs it. It writes its
counters to ``stats_path`` as JSON when it stops cleanly.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any


def consume(project: str, config_json: str, consumer: str, stats_dir: str) -> None:
    """Consume as ``consumer`` until SIGTERM; write the counters; exit 0.

    ``<stats_dir>/stats-<consumer>-<pid>.json.ready`` appears once the model is loaded and
    SIGTERM is handled; ``stats-<consumer>-<pid>.json`` holds the counters after a clean stop.
    """
    stats_path = f"{stats_dir}/stats-{consumer}-{os.getpid()}.json"
    stopping: list[Any] = []  # SIGTERM may come while the model still loads

    def _stop(signum: int, frame: Any) -> None:
        stopping.append(signum)
        if runner is not None:
            runner.stop()

    runner = None
    signal.signal(signal.SIGTERM, _stop)
    import time

    from shipyard.registry.registry import ModelRegistry
    from shipyard.serve.server import RegistrySource
    from shipyard.stream.brokers import open_broker
    from shipyard.stream.config import StreamConfig
    from shipyard.stream.runner import StreamRunner
    from shipyard.stream.scoring import ModelFollower
    from shipyard.track.workspace import Workspace

    started = time.monotonic()
    config = StreamConfig.model_validate_json(config_json)
    with Workspace.open(Path(project)) as workspace:
        follower = ModelFollower(
            RegistrySource(ModelRegistry.for_workspace(workspace)),
            config.model_name,
            config.alias,
            poll_interval_s=config.poll_interval_s,
        )
        backend = open_broker(config, consumer=consumer)
        runner = StreamRunner(
            backend,
            follower,
            log_root=Path(project) / "predictions",
            drain_interval_s=0.1,
            drain_lease_ms=1_000,
        )
        Path(stats_path + ".ready").write_text(f"{time.monotonic() - started:.2f}")
        if stopping:
            runner.stop()
        stats = runner.run()
    Path(stats_path).write_text(
        json.dumps(
            {
                "events": stats.events,
                "outputs": stats.outputs,
                "duplicates": stats.duplicates,
                "dead_letters": stats.dead_letters,
            }
        )
    )
    os._exit(0)  # skip interpreter teardown in the forked child
