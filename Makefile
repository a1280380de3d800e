# colorkit: every target creates .venv and installs the pinned environment on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: venv demo test browser graphviz reproduce bench serve clean

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

venv: $(STAMP)

## main job: run every report notebook at the quick scale (the sample set is built if missing)
## and write reports/ with its index reports/README.md
demo: $(STAMP) graphviz
	$(PY) -m colorkit reproduce --scale quick

## one or all notebooks at a chosen scale: make reproduce [NAMES="01_strided_cnn"] [SCALE=full DATA_ROOT=/data]
SCALE ?= quick
reproduce: $(STAMP) graphviz
	$(PY) -m colorkit reproduce $(NAMES) --scale $(SCALE) $(if $(DATA_ROOT),--data-root "$(DATA_ROOT)")

## the test suite (what CI runs)
test: $(STAMP) browser graphviz
	$(PY) -m pytest -q

## Debian's chromium and chromedriver for the browser test, installed when missing (as root);
## otherwise that test is skipped, or fails under CI=1
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver; \
	  else \
	    echo "note: /usr/bin/chromium or /usr/bin/chromedriver is missing; install Debian's chromium and chromium-driver"; \
	  fi; \
	fi

## Debian's Graphviz, with which the notebooks draw each network (keras.utils.plot_model through pydot),
## installed when missing (as root); otherwise the notebooks skip the drawings with a note
graphviz:
	@if ! command -v dot >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends graphviz; \
	  else \
	    echo "note: Graphviz's dot is missing; install Debian's graphviz to draw the networks in the notebooks"; \
	  fi; \
	fi

## performance benchmarks against the reports' ways (under 20 min; QUICK=1: under 5);
## results in reports/benchmarks/results.csv and results.md
bench: $(STAMP)
	$(PY) -m bench $(if $(QUICK),--quick)

## the HTTP API and web page on http://127.0.0.1:8000/ for a trained run: make serve RUN=runs/NAME
serve: $(STAMP)
	@test -n "$(RUN)" || { echo "usage: make serve RUN=RUN_DIR (a run folder written by train)"; exit 2; }
	$(PY) -m colorkit serve --run "$(RUN)"

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
