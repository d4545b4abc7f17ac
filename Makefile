# Two commands a newcomer needs:  make up   and   make test
.PHONY: up up-cluster test test-fast test-tools chaos bench pipeline lint fmt fmt-check typecheck env clean

# uv from PATH, else the uv Python package (installed on first use with pip).
UV ?= $(shell command -v uv 2>/dev/null || echo "python3 -m uv")

env: .venv/.synced

.venv/.synced: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --frozen
	@touch $@

## up: set up, run the whole pipeline, then keep Dagster UI (:3000), MLflow UI (:5000), the live lane and the
## live dashboard (:8000/dashboard/) up until Ctrl-C
up: env
	$(UV) run --frozen courtside up

## up-cluster: the same in its scaled form on this machine, as processes: PostgreSQL (data kept in
## .courtside/cluster/postgres) and Redis on 127.0.0.1, Dagster's steps on Celery workers, 2 engine workers,
## 2 gateway replicas, 2 BentoML workers (courtside/cluster.py, docs/SCALING.md); Ctrl-C stops all of it
up-cluster: env
	$(UV) run --frozen courtside up --profile cluster

## test: the whole test suite (real data, real Postgres, planted defects, no-leakage); installs what its
## tests need beyond Python (headless Chromium, PostgreSQL server binaries: scripts/ensure-test-tools).
## Two pytest-xdist workers, a test module (or the modules sharing the pipeline run) to a worker: tests/conftest.py;
## each worker's numeric libraries (XGBoost, BLAS) one thread, so two workers never oversubscribe two cores.
## `make test XDIST=` runs it in one process
XDIST ?= -n 2 --dist loadscope --no-loadscope-reorder
test: env test-tools
	$(if $(strip $(XDIST)),OMP_NUM_THREADS=1 )$(UV) run --frozen pytest $(XDIST)

test-tools:
	@scripts/ensure-test-tools

## test-fast: the pure core and unit tests (betting, features, feeds, expectations, training, serving, storage
## without the real-data, server and PostgreSQL tests: markers `slow`, `postgres`); nothing to install
FAST_TESTS = tests/betting tests/features tests/feeds tests/expectations tests/training tests/serving tests/storage tests/adapters
test-fast: env
	$(if $(strip $(XDIST)),OMP_NUM_THREADS=1 )$(UV) run --frozen pytest $(XDIST) -m "not slow and not postgres" $(FAST_TESTS)

## chaos: the full fault suite (hostile feed, 100 forced disconnects, 50 kill -9, schemathesis, open doors);
## figures at the end and in .courtside/reports/chaos.json (CI runs a bounded version within make test)
CHAOS_SECURITY = tests/ops/test_exposure.py tests/ops/test_mlflow_auth.py tests/ops/test_gatekeeper.py \
	tests/api/test_gateway_access.py tests/api/test_hardening.py tests/serving/test_service_http.py
chaos: env
	COURTSIDE_CHAOS_FULL=1 COURTSIDE_CHAOS_REPORT=.courtside/reports/chaos.json \
		$(UV) run --frozen pytest -q -p no:cacheprovider tests/chaos $(CHAOS_SECURITY)

## bench: time the full pipeline from raw files to a registered model (3 fresh runs), then the live path, the
## in-play backtest of every ATP point-by-point match and the WebSocket fan-out, each beside its baseline;
## ends with one table of every figure (also .courtside/reports/bench.md); benchmarks, not tests; about 40 min
bench: env
	$(UV) run --frozen courtside bench

pipeline: env
	$(UV) run --frozen courtside pipeline

## lint: ruff's checks and its format check (not part of make test yet); fmt: apply the format
lint: env
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .

fmt-check: env
	$(UV) run --frozen ruff format --check .

fmt: env
	$(UV) run --frozen ruff format .

## typecheck: mypy on features/, betting/, expectations/, feeds/ (settings in pyproject.toml); make test runs it too
## (tests/test_architecture.py::test_the_core_type_checks), so CI fails on a type error
typecheck: env
	$(UV) run --frozen mypy

clean:
	rm -rf .courtside
