# Two commands set everything up on a fresh machine: `make book` and `make test`.
# Each creates the virtual environment when it is missing or requirements.txt changed.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
ENV_STAMP := $(VENV)/.installed
MATHJAX_DIR := _vendor/_static/mathjax
MATHJAX := $(MATHJAX_DIR)/tex-mml-chtml.js
# Student versions of the assignments, which chapters link with {download}.
RELEASED := $(patsubst solutions/%,release/%,$(wildcard solutions/*/*.ipynb))
JB_FLAGS ?= -W -n --keep-going
PORT ?= 8000
ASSIGNMENT ?=
PYTEST_ARGS ?=

.PHONY: help env book serve test test-fast lint release clean clean-all chromium gpu-wheels

help:
	@echo "make book       build the website into _build/html (creates .venv if needed)"
	@echo "make test       run the whole test suite (creates .venv if needed)"
	@echo "make test-fast  tests not marked slow"
	@echo "make serve      serve _build/html on http://127.0.0.1:$(PORT)"
	@echo "make release    student versions of every assignment into release/"
	@echo "make lint       ruff"
	@echo "make env        create .venv (book and test do it when missing)"
	@echo "make clean      remove build outputs (keeps .venv and grading results)"
	@echo "make clean-all  also remove .venv and _vendor"
	@echo "make gpu-wheels packages for .ci/gpu-check on an offline GPU machine"

env: $(ENV_STAMP)

$(ENV_STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements.txt
	@# d2l pins 2023 versions of numpy/matplotlib/pandas; its code works with ours.
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps d2l==1.0.3
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

# MathJax from the npm registry, served by the site itself (no CDN at read time):
# everything under _vendor/ is copied as-is into _build/html (html_extra_path).
$(MATHJAX):
	npm install --silent --no-save --no-audit --no-fund --prefix $(VENV)/npm mathjax@3
	rm -rf $(MATHJAX_DIR) && mkdir -p $(MATHJAX_DIR)
	cp -r $(VENV)/npm/node_modules/mathjax/es5/. $(MATHJAX_DIR)/

# release/<name>/<name>.ipynb from solutions/<name>/<name>.ipynb, regenerated when the
# solution or the autograder changes; chapters link it, so it must exist before the build.
$(RELEASED): release/%: solutions/% $(wildcard autograder/*.py) | $(ENV_STAMP)
	$(BIN)/python -m autograder release $(notdir $(patsubst %/,%,$(dir $*)))

book: $(ENV_STAMP) $(MATHJAX) $(RELEASED)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/jupyter-book build . $(JB_FLAGS)
	@echo
	@echo "The website is in _build/html (open _build/html/index.html)."
	@echo "Serve it with: make serve   (then browse http://127.0.0.1:$(PORT))"

serve:
	@test -f _build/html/index.html || { echo "no site yet: run 'make book' first"; exit 1; }
	$(BIN)/python -m http.server $(PORT) --bind 127.0.0.1 --directory _build/html

# Debian's chromium for the browser tests; skipped (tests then skip) without root or apt.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium (Debian package) for the browser tests"; \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	      || echo "could not install chromium: browser tests will skip"; \
	  else echo "chromium not installed and cannot install it: browser tests will skip"; fi; }

test: $(ENV_STAMP) $(MATHJAX) chromium
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: $(ENV_STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

# What .ci/gpu-check installs on an offline GPU machine whose image has its own PyTorch:
# the packages .ci/gpu-wheels.txt names, at this environment's versions, as wheels for that
# image's CPython (GPU_PYTHON); no dependencies resolved (the list is whole).
GPU_PYTHON ?= 3.12
GPU_ABI = cp$(word 1,$(subst ., ,$(GPU_PYTHON)))$(word 2,$(subst ., ,$(GPU_PYTHON)))
gpu-wheels: $(ENV_STAMP)
	rm -rf .gpu-wheels && mkdir .gpu-wheels
	grep -v '^#' .ci/gpu-wheels.txt | $(BIN)/python -c \
	  'import sys, importlib.metadata as m; print(*(f"{n}=={m.version(n)}" for n in sys.stdin.read().split()), sep="\n")' \
	  > .gpu-wheels/pins.txt
	$(BIN)/python -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
	  --python-version $(GPU_PYTHON) --implementation cp --abi $(GPU_ABI) --abi abi3 --abi none \
	  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
	  --platform manylinux_2_5_x86_64 --platform manylinux1_x86_64 --platform any \
	  -d .gpu-wheels -r .gpu-wheels/pins.txt
	@du -sh .gpu-wheels

lint: $(ENV_STAMP)
	$(BIN)/ruff check lib autograder tests benchmarks _ext

release: $(ENV_STAMP)
	$(BIN)/python -m autograder release $(ASSIGNMENT)

# Build outputs only: autograded/, feedback/, exports/ and gradebook.db are grading results.
clean:
	rm -rf _build release .pytest_cache

clean-all: clean
	rm -rf $(VENV) _vendor
