# Two commands do all the set-up on a fresh clone:
#   make demo   creates .venv, installs, runs `ledger demo` on embedded SQLite
#   make test   installs the test dependencies and runs the whole suite, PostgreSQL included
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DEMO_OUT ?= demo-out

.PHONY: demo test install install-test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

demo: install
	$(BIN)/ledger demo --out $(DEMO_OUT)

# The suite creates and drops its own PostgreSQL databases (server at 127.0.0.1:5432, or a
# throwaway cluster via pytest-postgresql); see tests/conftest.py. pytest's exit code is kept.
test: install-test
	@command -v hledger >/dev/null 2>&1 || \
	  ( command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && \
	    { DEBIAN_FRONTEND=noninteractive apt-get install -y -q hledger >/dev/null 2>&1 || \
	      { apt-get update -q >/dev/null 2>&1 && \
	        DEBIAN_FRONTEND=noninteractive apt-get install -y -q hledger >/dev/null 2>&1; }; } ) || \
	  echo "hledger not installed: the hledger export test will be skipped"
	$(BIN)/python -m pytest -p no:cacheprovider

# Benchmarks are not part of `make test`. B4: invoice/credit-note PDF rendering, WeasyPrint's
# defaults against reports.pdf (about a minute); rewrites its section of benchmarks/RESULTS.md.
bench: install-test
	$(BIN)/python benchmarks/bench_render.py --results benchmarks/RESULTS.md

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .hypothesis *.egg-info
