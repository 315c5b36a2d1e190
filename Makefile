# Two commands do all the set-up on a fresh clone:
#   make demo   creates .venv, installs, runs `ledger demo` on embedded SQLite
#   make test   installs the test dependencies and runs the whole suite, PostgreSQL included
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DEMO_OUT ?= demo-out

.PHONY: demo test test-fast golden install install-test bench bench-http clean i18n

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

# Document translations (reports/i18n.py): extract the labels of reports/documents.py,
# reports/lines.py and reports/templates/document.html into reports/locale/messages.pot, then
# merge it into every reports/locale/<lang>/LC_MESSAGES/messages.po (new labels arrive empty:
# translate them). The .po files are read at run time; no .mo file is built or committed.
# A new language: pybabel init -i reports/locale/messages.pot -d reports/locale -l LANG, then
# add it to reports.i18n.LANGUAGES.
i18n: install
	$(BIN)/pybabel extract -F reports/babel.cfg --no-location --sort-output --omit-header \
	  -o reports/locale/messages.pot .
	$(BIN)/pybabel update -i reports/locale/messages.pot -d reports/locale --no-wrap \
	  --no-fuzzy-matching --ignore-obsolete --ignore-pot-creation-date

# The unit tier: the accounting core on plain values, no database (well under a minute).
test-fast: install-test
	$(BIN)/python -m pytest -p no:cacheprovider -q tests/unit

# The golden corpus: journals, documents, reports, exports and seals of 88 scenarios, byte for
# byte, on SQLite and PostgreSQL. `make golden GOLDEN_UPDATE=1` rewrites it: explain every
# changed file in the commit message.
GOLDEN_UPDATE ?=
golden: install-test
	LEDGER_GOLDEN_UPDATE=$(GOLDEN_UPDATE) $(BIN)/python -m pytest -p no:cacheprovider -q tests/examples/test_golden.py

# Benchmarks are not part of `make test`. Each rewrites its own section of benchmarks/RESULTS.md.
# B4: invoice/credit-note PDF rendering, WeasyPrint's defaults against reports.pdf (about a minute).
# B1-B3, B5: import, close, Python API, export and verify of 1,000,000 usage events for 10,000
# customers on PostgreSQL (127.0.0.1:5432, own database bench_<pid>, dropped at the end); see
# benchmarks/bench_scale.py. `make bench BENCH_SCALE=--quick` runs the scale part small (a minute).
# py-spy (profile of B1, B2, B3) is installed into .venv when it can be; without it, no profile.
BENCH_SCALE ?=
bench: install-test
	@test -x $(BIN)/py-spy || $(BIN)/python -m pip install --quiet py-spy >/dev/null 2>&1 || \
	  echo "py-spy not installed: the scale benchmark runs without a profile"
	$(BIN)/python benchmarks/bench_render.py --results benchmarks/RESULTS.md
	$(BIN)/python benchmarks/bench_scale.py --results benchmarks/RESULTS.md $(BENCH_SCALE)
	$(MAKE) bench-http

# B6: `ledger serve` on PostgreSQL (127.0.0.1:5432, own database bench_http_<pid>, dropped at the
# end) under 64 connections from wrk (one usage event a request), beside a raw INSERT+COMMIT loop
# and Ledger.record_usage in the same run; rewrites the section "B6 HTTP" of benchmarks/RESULTS.md
# (about 2 minutes; BENCH_HTTP=--quick: 30 s). wrk is installed with apt-get as hledger is for the
# tests; without it the script falls back to a Python load generator and says so.
BENCH_HTTP ?=
bench-http: install-test
	@command -v wrk >/dev/null 2>&1 || \
	  ( command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && \
	    { DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null 2>&1 || \
	      { apt-get update -q >/dev/null 2>&1 && \
	        DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null 2>&1; }; } ) || \
	  echo "wrk not installed: B6 falls back to a Python load generator (its figures are bounded by it)"
	$(BIN)/python benchmarks/bench_http.py --results benchmarks/RESULTS.md $(BENCH_HTTP)

# The same work on one PostgreSQL (127.0.0.1:5432) and on the local Citus cluster (brought up
# first, left up): the demo month and 1,000,000 usage events for 10,000 customers imported,
# closed and verified on fresh databases (dropped at the end), seals compared; rewrites the
# section "Citus" of benchmarks/RESULTS.md (10-20 minutes; BENCH_CITUS=--quick: about a minute).
BENCH_CITUS ?=
.PHONY: bench-citus
bench-citus: install-test
	bash tests/citus/cluster.sh up
	$(BIN)/python benchmarks/bench_citus.py --results benchmarks/RESULTS.md $(BENCH_CITUS)

# A local Citus cluster (coordinator 9700, workers 9701-9702; CITUS_PORT moves them) for the
# Citus tests and benchmarks: builds Citus from source the first time when it is not installed
# (2-6 minutes). `bash tests/citus/cluster.sh --help` for createdb, dropdb, status, down --purge.
.PHONY: citus-up citus-down test-citus
citus-up:
	bash tests/citus/cluster.sh up

citus-down:
	bash tests/citus/cluster.sh down

# The engine on the local Citus cluster (not part of `make test`: about 20 minutes): the worked
# examples, the database guards, the concurrency tests, the set-based import's equivalence
# property, the API paths and the Citus comparison, every PostgreSQL database made on the
# cluster and distributed by customer. Brings the
# cluster up and down again (a cluster already up is left up); pytest's exit code is kept.
CITUS_PORT ?= 9700
CITUS_TESTS ?= tests/examples/test_worked_examples.py tests/examples/test_lifecycle.py \
  tests/examples/test_margin.py tests/examples/test_auto_topup.py tests/examples/test_soft_cap.py \
  tests/e2e/test_issued_documents.py \
  tests/integration/test_database_guards.py tests/integration/test_concurrency.py \
  tests/integration/test_concurrent_customers.py tests/integration/test_close_concurrency.py \
  tests/integration/test_staged_usage.py tests/integration/test_verify.py tests/integration/test_api.py \
  tests/integration/test_direct.py tests/integration/test_customer_keys.py tests/integration/test_citus.py
test-citus: install-test
	@was_up=0; bash tests/citus/cluster.sh status >/dev/null 2>&1 && was_up=1; \
	bash tests/citus/cluster.sh up || exit $$?; \
	CITUS_PORT=$(CITUS_PORT) LEDGER_TEST_CITUS=1 \
	  LEDGER_TEST_PG_ADMIN_URL=postgresql://postgres@127.0.0.1:$(CITUS_PORT)/postgres \
	  $(BIN)/python -m pytest -p no:cacheprovider -m postgres $(CITUS_TESTS); rc=$$?; \
	[ $$was_up = 1 ] || bash tests/citus/cluster.sh down; exit $$rc

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .hypothesis *.egg-info
