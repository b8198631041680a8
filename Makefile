# The lab's commands. `make run` runs the whole lab headless on the local backend;
# `make test` runs the test suite; `make lab` opens JupyterLab on the notebooks.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: rehearse-aws reference-run install run test test-fast test-browser lab lint bench clean connector-jar

$(STAMP): pyproject.toml
	@$(PY) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed: set PY=python3.11 (or newer) and run make again.")'
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	@# PYTHONWARNINGS: setuptools prints an "Editable installation" banner otherwise
	PYTHONWARNINGS=ignore $(BIN)/python -m pip install -q -e '.[dev]'
	@# the JVM start-up cache only saves time: a failure is reported, not fatal
	$(BIN)/python -m labhelpers jvm-cache || echo "WARNING: no JVM start-up cache; jobs start ~5 s slower"
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/python -m labhelpers run-lab

# the aws backend's notebooks headless, every AWS call going to the local emulator
rehearse-aws: connector-jar
	$(BIN)/python -m labhelpers --backend aws run-lab --emulator

# After changing a notebook: re-run the short reference run that nbval checks against
# (docs/reference-run, ~6 min) and commit it with the change.
reference-run: install
	$(BIN)/python -m labhelpers reference-run

# Two lanes at once: the tests that run notebooks, a browser or minutes of live traffic
# (marked `notebooks`, `browser`, `live`) mostly wait, so they run beside the others, each
# test in its own lab home; their output follows the others'. Fails if either lane fails.
test: install
	$(BIN)/python -m ruff check labhelpers tests bench
	@log=$$(mktemp); \
	$(BIN)/python -m pytest -q -p no:cacheprovider --durations=8 -m "notebooks or browser or live" \
	  >$$log 2>&1 & lane=$$!; \
	$(BIN)/python -m pytest -q -p no:cacheprovider --durations=15 -m "not notebooks and not browser and not live"; \
	rest=$$?; wait $$lane; notebooks=$$?; \
	echo "== the tests marked notebooks, browser or live (run beside the ones above):"; \
	cat $$log; rm -f $$log; exit $$(( rest || notebooks ))

test-fast: install
	$(BIN)/python -m pytest -q -m "not integration and not notebooks and not browser"

# JupyterLab in headless Chromium (Debian's: apt-get install chromium); skipped without it
test-browser: install
	$(BIN)/python -m pytest -q -p no:cacheprovider -m browser

# The Kinesis connector jar (cloud/target/pyflink-dependencies.jar), then the managed Flink
# application's zip (cloud/dist/). A prebuilt connector in ../shared/jars (the project's build
# machines) is installed into the local Maven repository first; elsewhere Maven Central serves it.
connector-jar: install
	cloud/install-connector-jar $(SHARED_JARS)
	$(BIN)/python -m labhelpers package

# the environment's bin first on the PATH of JupyterLab, its terminals and its kernels, so
# the notebooks' own `python -m labhelpers ...` commands work in a JupyterLab terminal
lab: install
	PATH="$(abspath $(BIN)):$$PATH" VIRTUAL_ENV="$(abspath $(VENV))" $(BIN)/jupyter lab notebooks/

lint: install
	$(BIN)/python -m ruff check labhelpers tests bench

# Each figure beside its baseline from the same run (a plain PyFlink job, bare krcf, a DuckDB
# recount) and their ratio; docs/performance.md keeps the last figures.
bench: install
	$(BIN)/python bench/bench_throughput.py --repeat 2
	$(BIN)/python bench/bench_replay.py
	$(BIN)/python bench/bench_forest.py
	$(BIN)/python bench/bench_generator.py
	$(BIN)/python bench/bench_kinesis_throttle.py
	$(BIN)/python bench/bench_live.py
	$(BIN)/python bench/bench_class.py --students 2

# stops and deletes what the lab made; run records (LAB_HOME/runs) are kept
clean:
	-$(BIN)/python -m labhelpers cleanup
