# Two commands on a fresh machine: `make run` (the whole demo) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PG_TEST_URL ?= postgresql://postgres@127.0.0.1:5432/test
# Share of the fault suite's full counts and durations (tests/fault, README
# "Reliability and security"); FAULT_SCALE=1 is the full run.
export FAULT_SCALE ?= 0.05

.PHONY: run test test-sqlite test-pg venv translations bench clean

venv: $(VENV)/.installed

# Reinstall only when requirements.txt changes.
$(VENV)/.installed: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	touch $@

run: venv
	$(BIN)/python run.py

test: test-sqlite test-pg

test-sqlite: venv
	$(BIN)/python -m pytest

# The database-facing tests again on PostgreSQL (skipped with a note if it is down,
# except under CI, where it must be up).
test-pg: venv
	@if $(BIN)/python -c "import psycopg2,sys; psycopg2.connect('$(PG_TEST_URL)').close()" 2>/dev/null; then \
		TEST_DATABASE_URL=$(PG_TEST_URL) $(BIN)/python -m pytest -m "not sqlite_only and not nodb"; \
	elif [ "$$CI" = "true" ]; then echo "PostgreSQL is not reachable at $(PG_TEST_URL)"; exit 1; \
	else echo "PostgreSQL not reachable at $(PG_TEST_URL): skipping the PostgreSQL pass"; fi

translations: venv
	$(BIN)/pybabel extract -F babel.cfg -k _l -o cabinet/translations/messages.pot .
	$(BIN)/pybabel update -i cabinet/translations/messages.pot -d cabinet/translations
	$(BIN)/pybabel compile -d cabinet/translations

bench: venv
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) instance .pytest_cache
