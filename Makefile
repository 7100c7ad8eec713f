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

.PHONY: help env book serve test test-fast lint release clean clean-all chromium

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

lint: $(ENV_STAMP)
	$(BIN)/ruff check lib autograder tests benchmarks _ext

release: $(ENV_STAMP)
	$(BIN)/python -m autograder release $(ASSIGNMENT)

# Build outputs only: autograded/, feedback/, exports/ and gradebook.db are grading results.
clean:
	rm -rf _build release .pytest_cache

clean-all: clean
	rm -rf $(VENV) _vendor
