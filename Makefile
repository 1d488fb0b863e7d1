# The README's two commands: `make serve` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: serve test soak lint typecheck schema migrate e2e-deps clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.stamp-run: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.stamp-bench: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[bench]'
	touch $@ $(VENV)/.stamp-run

$(VENV)/.stamp-test: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[test]'
	touch $@ $(VENV)/.stamp-run $(VENV)/.stamp-bench

tests/e2e/node_modules/.stamp: tests/e2e/package.json tests/e2e/package-lock.json
	cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error
	touch $@

e2e-deps: tests/e2e/node_modules/.stamp

## serve: install if needed, migrate the SQLite database, serve GraphQL + GraphiQL on http://$(HOST):$(PORT)/graphql
serve: $(VENV)/.stamp-run
	$(VENV)/bin/checkin-realtime serve --host $(HOST) --port $(PORT)

## test: install what the tests need, lint, type-check, run every test
test: $(VENV)/.stamp-test e2e-deps lint typecheck
	$(PY) -m pytest $(PYTEST_ARGS)

## soak: one serve, 2,000 idle subscriptions, 20 live subscribers, 40 writes/s for $(MINUTES) minutes;
## PASS when RSS stays within +-5 % from minute 1 and every event arrives (bench/soak-results.json)
MINUTES ?= 10
soak: $(VENV)/.stamp-bench
	$(PY) -m bench.soak --minutes $(MINUTES) $(SOAK_ARGS)

## bench: each performance figure beside a reference measured in the same run, in under 5 minutes;
## prints a table and writes bench/results.json. BENCH=Q1,F1 selects figures, BENCH_ARGS=--smoke
## shrinks every size (a check that it runs; its numbers mean nothing)
.PHONY: bench
bench: $(VENV)/.stamp-bench
	$(PY) -m bench.run $(if $(BENCH),--only $(BENCH)) $(BENCH_ARGS)

lint: $(VENV)/.stamp-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(VENV)/.stamp-test
	$(VENV)/bin/mypy

schema: $(VENV)/.stamp-run
	$(VENV)/bin/checkin-realtime export-schema -o schema.graphql

migrate: $(VENV)/.stamp-run
	$(VENV)/bin/checkin-realtime migrate

clean:
	rm -rf $(VENV) tests/e2e/node_modules checkin.db checkin.db-wal checkin.db-shm
