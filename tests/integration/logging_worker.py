"""A process that logs metrics, driven by the integration tests (not collected by pytest).

Usage: python logging_worker.py <mode> <count> [<run name>]
  steady  log <count> values through log_metric, end the run normally, print the run id
  crash   log forever, flushing every <count> values and printing "flushed <n>" after each
  term    like crash, inside ``with start_run``, so SIGTERM should end the run killed
  open    start a run without ``with``, log <count> values, and just return
  raise   start a run without ``with`` and let an exception escape
"""

from __future__ import annotations

import sys

import shipyard as sy


def main() -> None:
    mode, count = sys.argv[1], int(sys.argv[2])
    name = sys.argv[3] if len(sys.argv) > 3 else mode
    if mode == "steady":
        with sy.start_run(name=name, experiment="concurrency") as run:
            for i in range(count):
                run.log_metric("value", float(i), step=i)
        print(run.run_id, flush=True)
    elif mode in ("crash", "term"):
        with sy.start_run(name=name, experiment="faults") as run:
            print(run.run_id, flush=True)
            logged = 0
            while True:
                for _ in range(count):
                    run.log_metric("value", float(logged), step=logged)
                    logged += 1
                run.flush()
                print(f"flushed {logged}", flush=True)
    elif mode == "open":
        run = sy.start_run(name=name, experiment="faults")
        print(run.run_id, flush=True)
        for i in range(count):
            run.log_metric("value", float(i))
    elif mode == "raise":
        run = sy.start_run(name=name, experiment="faults")
        print(run.run_id, flush=True)
        run.log_metric("value", 1.0)
        raise RuntimeError("escaped the script")


if __name__ == "__main__":
    main()
