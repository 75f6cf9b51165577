"""Cold start: process start to the first correct prediction, Shipyard vs plain FastAPI + sklearn.

A replica that restarts, or a new one that scales out, answers nothing until it has imported
its code, loaded its model and bound its port. Measured from ``Popen`` to the first ``200``
whose prediction equals the model's own in-process answer, polling every 10 ms:

- the floor: a plain FastAPI app on the same uvicorn, loading the same fitted scikit-learn
  pipeline (from a joblib file this script writes itself, as such apps do) and predicting with
  it on each request;
- Shipyard: ``shipyard serve m@production`` (one worker) on a workspace holding the model.

Both are fresh processes and alternate, first one then the other (``harness.py``); the ratio
is per repetition. Targets (issue #17): Shipyard <= 2 s, and <= 1.0x the floor.

Run: ``.venv/bin/python benchmarks/cold_start.py [--repeat 5]``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from harness import Comparison, report
from serving import FEATURES, build_model, create_token

ABSOLUTE_TARGET_S = 2.0
RATIO_TARGET = 1.0

FLOOR_APP = textwrap.dedent(
    """
    import os

    import joblib
    import orjson
    import pandas as pd
    from fastapi import FastAPI, Request
    from fastapi.responses import Response

    model = joblib.load(os.environ["FLOOR_MODEL"])
    app = FastAPI()

    @app.post("/models/m/predict")
    async def predict(request: Request) -> Response:
        rows = orjson.loads(await request.body())
        labels = model.predict(pd.DataFrame(rows))
        return Response(orjson.dumps({"predictions": labels.tolist()}))
    """
)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def first_answer_s(
    args: list[str], url: str, body: bytes, headers: dict[str, str], want: int
) -> float:
    """Seconds from starting ``args`` to the first 200 that predicts ``want``."""
    import httpx

    started = time.perf_counter()
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with httpx.Client(timeout=5) as client:
            while time.perf_counter() - started < 180:
                if process.poll() is not None:
                    raise SystemExit(f"{' '.join(args)} exited {process.returncode}")
                try:
                    answer = client.post(url, content=body, headers=headers)
                except httpx.TransportError:
                    time.sleep(0.01)
                    continue
                if answer.status_code == 200:
                    got = answer.json()["predictions"][0]
                    label = got["label"] if isinstance(got, dict) else got
                    if int(label) != want:
                        raise SystemExit(f"{args[0]} answered {got}, expected {want}")
                    return time.perf_counter() - started
                time.sleep(0.01)
        raise SystemExit(f"{' '.join(args)} gave no answer within 180 s")
    finally:
        process.terminate()
        process.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        bundle = build_model(root)
        import joblib
        import polars as pl

        joblib.dump(bundle.model, root / "floor.joblib")
        (root / "floor_app.py").write_text(FLOOR_APP)
        row = dict.fromkeys(FEATURES, 0.5)
        want = int(bundle.predict(pl.DataFrame([row])).labels[0])
        body = json.dumps([row]).encode()
        token = create_token(root, "project")
        bin_dir = Path(sys.executable).parent
        os.environ["FLOOR_MODEL"] = str(root / "floor.joblib")
        os.environ["SHIPYARD_PROJECT_DIR"] = str(root)
        comparison = Comparison("cold_start_vs_fastapi", RATIO_TARGET, peer=True)
        plain = {"content-type": "application/json"}
        for i in range(max(args.repeat, 3)):
            sides = []
            for side in ("floor", "shipyard") if i % 2 == 0 else ("shipyard", "floor"):
                port = _port()
                if side == "floor":
                    command = [str(bin_dir / "uvicorn"), "floor_app:app", "--app-dir", str(root),
                               "--port", str(port), "--log-level", "warning"]  # fmt: skip
                    seconds = first_answer_s(
                        command, f"http://127.0.0.1:{port}/models/m/predict", body, plain, want
                    )
                else:
                    command = [str(bin_dir / "shipyard"), "serve", "m@production", "--port",
                               str(port), "--no-log"]  # fmt: skip
                    auth = {**plain, "authorization": f"Bearer {token}"}
                    seconds = first_answer_s(
                        command, f"http://127.0.0.1:{port}/models/m/predict", body, auth, want
                    )
                sides.append((side, seconds))
            timing = dict(sides)
            comparison.add(timing["floor"], timing["shipyard"])
    report("cold start: process start to the first correct prediction", [comparison])
    median = sorted(comparison.ours)[len(comparison.ours) // 2]
    verdict = "ok" if median <= ABSOLUTE_TARGET_S else "MISS"
    print(f"RESULT cold_start_seconds ratio={median:.3f} target={ABSOLUTE_TARGET_S:g} {verdict}")


if __name__ == "__main__":
    main()
