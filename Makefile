# Two commands a newcomer needs:  make up   and   make test
.PHONY: up test bench pipeline lint env clean

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

## test: the whole test suite (real data, real Postgres, planted defects, no-leakage)
test: env
	$(UV) run --frozen pytest

## bench: time the full pipeline from raw files to a registered model, then the live path, then the
## WebSocket fan-out to 10,000 subscribers (benchmarks, not tests)
bench: env
	$(UV) run --frozen courtside bench

pipeline: env
	$(UV) run --frozen courtside pipeline

lint: env
	$(UV) run --frozen ruff check .

clean:
	rm -rf .courtside
