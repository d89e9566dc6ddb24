# koemo: the two commands a researcher needs are `make demo` and `make test`.
# Both call `make setup`, which is idempotent: it rebuilds .venv only when
# pyproject.toml or requirements/*.txt changed since the last successful setup.
# `make demo` writes to git-ignored folders and prints its figures beside the committed
# paper/demo/; only `make demo-refresh` rewrites paper/demo/ (and paper/README.md from it).

PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.koemo-setup-stamp
WORKDIR ?= data/demo
CONFIG  ?= configs/demo.yaml
DEMO_OUT ?= paper/demo-local
REFRESH_WORKDIR ?= data/demo-refresh

export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export PYTHONUNBUFFERED = 1

.PHONY: setup setup-browser test test-fast demo demo-refresh bench mutation clean help

help:
	@echo "make setup  - create .venv and install koemo (idempotent)"
	@echo "make test   - set up (and the browser for the web app's test), then run the test suite"
	@echo "make demo   - set up, run the whole pipeline on the bundled synthetic corpus into $(DEMO_OUT)/"
	@echo "              (git-ignored) and print its headline figures beside the committed paper/demo/"
	@echo "make demo-refresh - rerun the demo from an empty workdir and rewrite the committed paper/demo/"
	@echo "              and paper/README.md (deliberate: then review and commit them)"
	@echo "make bench  - set up, then run the benchmarks (writes benchmarks/results/)"
	@echo "make mutation - set up, then mutation-test the modules that decide results (slow; MODULES=\"metrics splits\" for some)"

setup: $(STAMP)

$(STAMP): pyproject.toml requirements/local.txt requirements/dev-lock.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements/local.txt
	$(BIN)/python -m pip install --quiet -r requirements/local.txt -r requirements/dev-lock.txt -e ".[dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

# The web app's test drives Debian's chromium through chromedriver (never a downloaded browser
# build); a Korean font makes the page's Hangul readable. Installed with apt only when missing.
BROWSER_PACKAGES := chromium chromium-driver fonts-nanum
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

setup-browser:
	@if test -x /usr/bin/chromium && test -x /usr/bin/chromedriver && test -d /usr/share/fonts/truetype/nanum; \
	then :; else \
	  echo "installing $(BROWSER_PACKAGES) (apt) for the web app's browser test"; \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(BROWSER_PACKAGES); \
	fi

test: setup setup-browser
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not mutation" --durations=25

test-fast: setup
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not slow"

demo: setup
	$(BIN)/koemo reproduce --config $(CONFIG) --synthetic --workdir $(WORKDIR) --out $(DEMO_OUT)
	$(BIN)/koemo summary $(DEMO_OUT) --against paper/demo

# Every run trains again (an empty workdir), so timings.md is a whole run's; paper/demo/ is
# emptied first so that it holds exactly what this run writes.
demo-refresh: setup
	rm -rf $(REFRESH_WORKDIR) paper/demo
	$(BIN)/koemo reproduce --config $(CONFIG) --synthetic --workdir $(REFRESH_WORKDIR) --out paper/demo
	$(BIN)/koemo summary paper/demo --readme paper/README.md

bench: setup
	$(BIN)/python -m benchmarks --out benchmarks/results

# mutmut over metrics, prepare and the loaders, splits, augment, the models' switch reads,
# checkpoints and the run lock (benchmarks/mutation.py; result in benchmarks/results/), then the
# planted-bug and switch-read tests (pytest -m mutation), each planting one bug in a copy of
# src/ for the fast tests to catch. Slow: not in CI.
MODULES ?=
mutation: setup
	$(BIN)/python -m benchmarks.mutation $(if $(MODULES),--only $(MODULES))
	$(BIN)/python -m pytest -q -p no:cacheprovider -m mutation

clean:
	rm -rf $(WORKDIR) $(DEMO_OUT) .pytest_cache
