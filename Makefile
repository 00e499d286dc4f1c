# The two set-up commands of the README: `make demo` and `make test` (and `make docs`, the site).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench clean browser docs notebooks

install: $(STAMP)

# torch first, alone and pinned, so pip takes the CPU wheel from the local cache and never
# resolves a CUDA build; everything else is pinned by constraints.txt.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt torch==2.13.0
	$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: install
	$(BIN)/seqlab tour

# tests/test_browser.py drives Debian's Chromium through Playwright (Playwright's own browser
# download cannot work offline); installed here, as root, only when it is missing. Without root,
# or when apt fails, this only warns: the browser test is then reported as skipped, with the reason.
browser:
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" != 0 ]; then \
	    echo "warning: /usr/bin/chromium is missing and installing it needs root (apt-get install chromium); the browser test will be skipped" >&2; \
	  elif ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }; then \
	    echo "warning: apt-get could not install chromium; the browser test will be skipped" >&2; \
	  fi; }

test: install browser lint
	$(BIN)/python -m pytest

# New lint, format or type errors fail `make test` (and so CI); the import layers are checked
# by tests/test_layers.py (lint-imports).
lint: install
	$(BIN)/ruff check src tests benchmarks notebooks
	$(BIN)/ruff format --check src tests benchmarks notebooks
	$(BIN)/mypy

# The documentation site (mkdocs.yml, docs/) at http://127.0.0.1:8000/, rebuilt on every save;
# `mkdocs build --strict` writes it to site/ (tests/test_docs.py builds it in the test suite).
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

# The course notebooks (notebooks/) in Jupyter: registers this .venv as the kernel "seqlab"
# ("Python (seqlab)") for the current user; open notebooks/ with any Jupyter and pick it.
notebooks: install
	$(BIN)/python -m ipykernel install --user --name seqlab --display-name "Python (seqlab)"

bench: install
	$(BIN)/python benchmarks/classify_cv.py
	$(BIN)/python benchmarks/throughput.py
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/ner_speed.py

clean:
	rm -rf $(VENV) runs build site src/*.egg-info .pytest_cache
