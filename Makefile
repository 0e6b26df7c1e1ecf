# Two commands on a fresh machine: `make run` (the whole demo) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PG_TEST_URL ?= postgresql://postgres@127.0.0.1:5432/test
# Share of the fault suite's full counts and durations (tests/fault, README
# "Reliability and security"); FAULT_SCALE=1 is the full run.
export FAULT_SCALE ?= 0.05

# Workers of the parallel pass (pytest-xdist). The serial pass runs the tests
# marked `serial` (fault suite, scaleout, browser, concurrency) on two workers,
# beside each other only, the fault suite as one group in one of them
# (tests/conftest.py). WORKERS=0 runs both passes in one process.
WORKERS ?= 2
PARALLEL := $(if $(filter 0,$(WORKERS)),,-n $(WORKERS))
SERIAL := $(if $(filter 0,$(WORKERS)),,-n 2 --dist loadgroup)
# pytest, but "no tests collected" (exit 5) is a failure with a message, never
# a silent pass or an unexplained failure.
PYTEST = sh -c '"$$0" -m pytest "$$@"; rc=$$?; if [ $$rc -eq 5 ]; then \
	echo "pytest collected no tests ($$*): failing"; exit 1; fi; exit $$rc' $(BIN)/python

.PHONY: run test lint test-sqlite test-pg venv venv-dev translations bench clean

venv: $(VENV)/.installed
venv-dev: $(VENV)/.installed-dev

# The runtime (make run, a server); reinstalled only when requirements.txt changes.
$(VENV)/.installed: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	touch $@

# Tests, benchmarks and lint on top: again when either file changes.
$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	touch $@

run: venv
	$(BIN)/python run.py

test: lint test-sqlite test-pg

lint: venv-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The last pass: the spec_mode tests again, the sandbox as Uniteller's virtual
# acquirer (its test cards and 10-100 roubles only).
test-sqlite: venv-dev
	$(PYTEST) -m "not serial" $(PARALLEL)
	$(PYTEST) -m serial $(SERIAL)
	SANDBOX_MODE=spec $(PYTEST) -m spec_mode $(PARALLEL)

# The database-facing tests again on PostgreSQL (skipped with a note if it is down,
# except under CI, where it must be up).
test-pg: venv-dev
	@if $(BIN)/python -c "import psycopg2,sys; psycopg2.connect('$(PG_TEST_URL)').close()" 2>/dev/null; then \
		export TEST_DATABASE_URL=$(PG_TEST_URL); \
		$(PYTEST) -m "not serial and not sqlite_only and not nodb" $(PARALLEL) && \
		$(PYTEST) -m "serial and not sqlite_only and not nodb" $(SERIAL); \
	elif [ "$$CI" = "true" ]; then echo "PostgreSQL is not reachable at $(PG_TEST_URL)"; exit 1; \
	else echo "PostgreSQL not reachable at $(PG_TEST_URL): skipping the PostgreSQL pass"; fi

translations: venv
	$(BIN)/pybabel extract -F babel.cfg -k _l -o cabinet/translations/messages.pot .
	$(BIN)/pybabel update -i cabinet/translations/messages.pot -d cabinet/translations
	$(BIN)/pybabel compile -d cabinet/translations

# The benchmarks' load generator is wrk: installed here when missing (as .ci/run
# installs Chromium), where apt-get can; otherwise bench says what it needs.
bench: venv-dev
	@command -v wrk >/dev/null 2>&1 || (apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk) >/dev/null 2>&1 || true
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) instance .pytest_cache
