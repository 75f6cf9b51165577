# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Each creates the virtualenv (with uv, from the lock file) before it runs.
PYTHON ?= python3
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.synced

.PHONY: demo test check lint format typecheck layers bench clean help haproxy

help:  ## Show the targets.
	@grep -E '^[a-z]+:.*## ' Makefile | sed 's/:.*## /\t/'

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check 'uv>=0.4'

# Bytecode is compiled at install: uv installs without it and this machine sets
# PYTHONDONTWRITEBYTECODE, so otherwise every process compiles all it imports (seconds each).
$(STAMP): $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --extra dev --quiet --compile-bytecode
	$(BIN)/python -m compileall -q src
	@touch $(STAMP)

demo: $(STAMP)  ## Run the demo job on the embedded workspace (./.shipyard).
	$(BIN)/shipyard demo
	@echo
	@echo "The shipyard command lives in $(VENV)/: run 'source $(VENV)/bin/activate' to use it"
	@echo "here (or call $(BIN)/shipyard), then: cd .shipyard/demo-project && shipyard models show cancer"

check: $(STAMP)  ## Lint, format check, types and layering.
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

# The failover tests (tests/integration/test_replicas.py) run a real HAProxy from Debian's
# package; installed only when missing (they skip without it unless SHIPYARD_REQUIRE_SERVICES=1).
haproxy:
	@command -v haproxy >/dev/null 2>&1 || apt-get install -y -q haproxy >/dev/null \
		|| echo "haproxy could not be installed: the failover tests will skip"

test: check haproxy  ## Checks, then the whole test suite (slow tests included).
	$(BIN)/pytest -q -n auto

# Quick sizes (~4 min on 2 cores; pipeline at 1M rows, under a minute: its per-process start-up
# weighs more there than at the 2M rows of issue 17); each script's --help gives its full-size
# options.
bench: $(STAMP)  ## Run every benchmark at a quick size (prints RESULT lines).
	$(BIN)/python benchmarks/tracking.py
	$(BIN)/python benchmarks/cli.py --runs 1000 --repeat 3
	$(BIN)/python benchmarks/pipeline.py --rows 1000000 --repeat 3
	$(BIN)/python benchmarks/tuning.py --trials 100 --repeat 3
	$(BIN)/python benchmarks/serving.py --quick
	$(BIN)/python benchmarks/cold_start.py --repeat 3
	$(BIN)/python benchmarks/mlflow_api.py --metrics 300 --searches 10 --repeat 3
	$(BIN)/python benchmarks/drift.py --rows 200000 --reference-rows 200000
	$(BIN)/python benchmarks/bundle_bomb.py
	$(BIN)/python benchmarks/streaming.py --events 20000 --seconds 3
	$(BIN)/python benchmarks/quality.py --only digits,mixed
	$(BIN)/python benchmarks/backup.py --metrics 200000 --blobs 40 --repeat 3

format: $(STAMP)  ## Format and fix what ruff can.
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

clean:  ## Remove the virtualenvs and caches.
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache
