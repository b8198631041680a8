# The lab's commands (`make help` lists them). `make run` runs the whole lab headless on the
# local backend; `make test` runs the test suite; `make lab` opens JupyterLab on the notebooks.
VENV := .venv
BIN := $(VENV)/bin
# what is installed: `lab` (a student: run, lab) or `dev` (the developers' tools on top: test)
STAMP := $(VENV)/.installed-stamp
DEV_STAMP := $(VENV)/.installed-dev-stamp
# The lab needs Python 3.11 or 3.12 (apache-flink 2.3.0's wheels): python3 when it is one of
# them, else python3.12 or python3.11 (a newer python3, e.g. 3.13, is passed over). PY=...
# chooses one.
PY ?= $(shell for p in python3 python3.12 python3.11; do \
  $$p -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 12))' >/dev/null 2>&1 \
  && { echo $$p; break; }; done)
define NO_PYTHON
The lab needs Python 3.11 or 3.12 and neither python3, python3.12 nor python3.11 is one:
  macOS: brew install python@3.12, then make install again.
  Linux: install python3.12 or python3.11 (Ubuntu: the deadsnakes PPA's python3.12-venv; Fedora: sudo dnf install python3.12), then make install again.
  Windows: run the lab inside WSL2 (Ubuntu), where Linux's line applies.
endef
export NO_PYTHON

.PHONY: help rehearse-aws reference-run install install-dev run test test-fast test-browser lab lint bench clean distclean connector-jar

help:  ## list the commands
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 16

# One install script for make, CI, the container and Binder (tools/install_lab.py): it checks
# the platform before pip downloads anything.
$(STAMP): pyproject.toml tools/install_lab.py
	@test -n "$(PY)" || { echo "$$NO_PYTHON" >&2; exit 1; }
	$(PY) tools/install_lab.py --venv $(VENV) --editable --extras lab
	touch $(STAMP)

$(DEV_STAMP): $(STAMP)
	$(PY) tools/install_lab.py --venv $(VENV) --editable --extras dev --no-jvm-cache
	touch $(DEV_STAMP)

install: $(STAMP)  ## the lab for a student: .venv with the package (editable) and JupyterLab

install-dev: $(DEV_STAMP)  ## the developers' tools on top (pytest, ruff, playwright, ...)

run: install  ## the whole lab headless; the record in notebooks/runs/
	$(BIN)/python -m labhelpers run-lab

# the aws backend's notebooks headless, every AWS call going to the local emulator
rehearse-aws: connector-jar  ## the aws notebooks headless against the local emulator
	$(BIN)/python -m labhelpers --backend aws run-lab --emulator

# After changing a notebook: re-run the short reference run that nbval checks against
# (docs/reference-run, ~6 min) and commit it with the change.
reference-run: install-dev  ## re-run docs/reference-run after a notebook's change
	$(BIN)/python -m labhelpers reference-run

# Two lanes at once, each on pytest-xdist workers (each worker its own lab home and emulator):
# the tests that run notebooks, a browser or minutes of live traffic (marked `notebooks`,
# `browser`, `live`) mostly wait, so three of them run at a time beside the others (two at a
# time); their output follows the others'. That lane keeps each module on one worker
# (loadscope; the longest modules first: tests/conftest.py LONG_FIRST): test_installed.py's
# shared environment is built once for its two tests (xdist_group marks are ignored under
# pytest 9). Fails if either lane fails.
test: install
	$(BIN)/python -m ruff check labhelpers tests bench
	@log=$$(mktemp); \
	$(BIN)/python -m pytest -q -p no:cacheprovider --durations=8 -n 3 --dist loadscope --no-loadscope-reorder \
	  -m "notebooks or browser or live" >$$log 2>&1 & lane=$$!; \
	$(BIN)/python -m pytest -q -p no:cacheprovider --durations=15 -n 2 --dist worksteal \
	  -m "not notebooks and not browser and not live"; \
	rest=$$?; wait $$lane; notebooks=$$?; \
	echo "== the tests marked notebooks, browser or live (run beside the ones above):"; \
	cat $$log; rm -f $$log; exit $$(( rest || notebooks ))

test-fast: install-dev  ## unit tests only
	$(BIN)/python -m pytest -q -m "not integration and not notebooks and not browser"

# JupyterLab in headless Chromium (Debian's: apt-get install chromium); skipped without it
test-browser: install-dev  ## JupyterLab in headless Chromium
	$(BIN)/python -m pytest -q -p no:cacheprovider -m browser

# The Kinesis connector jar (cloud/target/pyflink-dependencies.jar), then the managed Flink
# application's zip (cloud/dist/). A prebuilt connector in ../shared/jars (the project's build
# machines) is installed into the local Maven repository first; elsewhere Maven Central serves it.
connector-jar: install  ## the Kinesis connector jar and the managed app's zip
	cloud/install-connector-jar $(SHARED_JARS)
	$(BIN)/python -m labhelpers package

# the environment's bin first on the PATH of JupyterLab, its terminals and its kernels, so
# the notebooks' own `python -m labhelpers ...` commands work in a JupyterLab terminal
lab: install  ## JupyterLab on notebooks/
	PATH="$(abspath $(BIN)):$$PATH" VIRTUAL_ENV="$(abspath $(VENV))" $(BIN)/jupyter lab notebooks/

lint: install-dev  ## ruff
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

# Stops and deletes what the lab made, and its port claims (/tmp/clicklab-port-*) for this
# lab home; run records (notebooks/runs/) are kept.
clean:  ## stop the lab, delete what it made and its port claims; keeps run records
	-test ! -x $(BIN)/python || $(BIN)/python -m labhelpers cleanup
	-test ! -x $(BIN)/python || $(BIN)/python -c 'from labhelpers.infra.config import release_port_claims; release_port_claims()'
	rm -rf build *.egg-info .pytest_cache .ruff_cache

distclean: clean  ## also the virtual environment, the JVM start-up cache and cloud/target
	-test ! -x $(BIN)/python || $(BIN)/python -c 'from labhelpers.analytics.jvm_cache import remove; remove()'
	rm -rf $(VENV) cloud/target cloud/dist

# `make test` and `make bench` need the developers' tools (their rules are above)
test bench: install-dev
