# The README's two commands: `make serve` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: serve port-free test chromium soak lint typecheck schema migrate e2e-deps clean

# Quiet installs: no progress, no pip version nag, and no setuptools warning box about
# editable installs (a UserWarning from the build backend, which pip shows since 24).
PIP_INSTALL := PYTHONWARNINGS=ignore::UserWarning $(PY) -m pip install -q \
	--disable-pip-version-check

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip

$(VENV)/.stamp-run: pyproject.toml | $(PY)
	$(PIP_INSTALL) -e .
	touch $@

$(VENV)/.stamp-bench: pyproject.toml | $(PY)
	$(PIP_INSTALL) -e '.[bench]'
	touch $@ $(VENV)/.stamp-run

$(VENV)/.stamp-test: pyproject.toml | $(PY)
	$(PIP_INSTALL) -e '.[test]'
	touch $@ $(VENV)/.stamp-run $(VENV)/.stamp-bench

tests/e2e/node_modules/.stamp: tests/e2e/package.json tests/e2e/package-lock.json
	cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error
	touch $@

e2e-deps: tests/e2e/node_modules/.stamp

## serve: install if needed, migrate the SQLite database, serve GraphQL + GraphiQL on http://$(HOST):$(PORT)/graphql
## (another port: make serve PORT=8001). The port is checked first, before anything is installed.
# exec: the server gets the signals itself and make reports no "*** Terminated".
serve: port-free $(VENV)/.stamp-run
	exec $(VENV)/bin/checkin-realtime serve --host $(HOST) --port $(PORT)

# Plain python3 (no venv yet): fails when something already listens on HOST:PORT.
port-free:
	@$(PYTHON) -c 'import socket, sys; s = socket.socket(); s.settimeout(1); \
	busy = s.connect_ex(("$(HOST)", $(PORT))) == 0; \
	sys.exit(busy and "port $(PORT) on $(HOST) is in use; choose another: make serve PORT=$(shell expr $(PORT) + 1)")'

## test: install what the tests need (Chromium too, when missing and apt-get can), lint,
## type-check, run every test on $(JOBS) pytest-xdist workers (JOBS=0: in one process)
JOBS ?= 2
test: $(VENV)/.stamp-test e2e-deps chromium lint typecheck
	$(PY) -m pytest -n $(JOBS) --dist loadgroup $(PYTEST_ARGS)

# The GraphiQL browser test needs Chromium: install the Debian package when we can
# (as root with apt-get); otherwise that one test skips with its reason (fails under CI).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Chromium (Debian package) for the GraphiQL browser test"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
	      >/dev/null) || echo "could not install chromium; the GraphiQL browser test will skip"; \
	  else \
	    echo "chromium is missing and cannot be installed here; the GraphiQL browser test will skip"; \
	  fi; }

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
