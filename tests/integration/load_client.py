"""A steady prediction load from its own process, for the failover tests (not collected).

Usage: python load_client.py <url> <token> <threads> <stop file> <out file>

Each thread sends one prediction at a time through ``<url>`` (the load balancer) until
``<stop file>`` exists. Every 0.1 s and at the end ``<out file>`` is replaced with a JSON
count of what happened: answers by status, transport errors by type, model versions seen.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

ROW = {"tenure": 12.0, "charges": 70.0, "plan": "basic"}


def main() -> None:
    url, token, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    stop_file, out = Path(sys.argv[4]), Path(sys.argv[5])
    lock = threading.Lock()
    counts: Counter[str] = Counter()
    versions: Counter[str] = Counter()
    failures: list[str] = []
    stop = threading.Event()

    def send() -> None:
        headers = {"authorization": f"Bearer {token}"}
        with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
            while not stop.is_set():
                try:
                    answer = client.post("/models/churn/predict", json=[ROW])
                except httpx.TransportError as e:
                    with lock:
                        counts[f"error:{type(e).__name__}"] += 1
                        failures.append(f"{time.time():.3f} {e!r}")
                    continue
                with lock:
                    counts[str(answer.status_code)] += 1
                    if answer.status_code == 200:
                        versions[str(answer.json()["version"])] += 1
                    else:
                        failures.append(
                            f"{time.time():.3f} {answer.status_code} {answer.text[:200]}"
                        )

    def dump() -> None:
        with lock:
            data = {"counts": dict(counts), "versions": dict(versions), "failures": failures[:20]}
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, out)

    workers = [threading.Thread(target=send) for _ in range(threads)]
    for worker in workers:
        worker.start()
    while not stop_file.exists():
        dump()
        time.sleep(0.1)
    stop.set()
    for worker in workers:
        worker.join()
    dump()


if __name__ == "__main__":
    main()
