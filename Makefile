# Two commands do everything on a fresh machine: `make run` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
STAMP := $(VENV)/.installed

.PHONY: install run dev test lint bench clean

$(STAMP): pyproject.toml scripts/system-deps.sh
	sh scripts/system-deps.sh
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## make run: set up, migrate, print a demo key once, serve with gunicorn on HOST:PORT
## and run `qrsvc worker` (email delivery, clean-ups) beside it; Ctrl-C stops both
run: install
	$(VENV)/bin/qrsvc db upgrade
	$(VENV)/bin/qrsvc keys demo
	$(VENV)/bin/qrsvc worker & worker=$$!; \
	trap 'kill $$worker 2>/dev/null; wait $$worker' EXIT; trap 'exit 130' INT TERM; \
	HOST=$(HOST) PORT=$(PORT) $(VENV)/bin/qrsvc serve

## make dev: the same with Flask's reloading development server
dev: install
	$(VENV)/bin/qrsvc db upgrade
	$(VENV)/bin/qrsvc keys demo
	$(VENV)/bin/qrsvc run --host $(HOST) --port $(PORT) --debug

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

## make test: set up, lint, type-check and run the whole suite
test: lint
	sh scripts/system-deps.sh --test
	$(PY) -m pytest

## make bench: the benchmarks in bench/ (figures, not pass/fail)
bench: install
	$(PY) -m pip install --quiet -e '.[dev,bench]'  # segno and py-spy: bench/ only
	$(PY) bench/run.py $(BENCH)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
