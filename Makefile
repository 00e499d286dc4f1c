# The two set-up commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test bench clean browser

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
# download cannot work offline); installed here, as root, only when it is missing.
browser:
	@test -x /usr/bin/chromium || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

test: install browser
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python benchmarks/classify_cv.py
	$(BIN)/python benchmarks/throughput.py
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/ner_speed.py

clean:
	rm -rf $(VENV) runs build src/*.egg-info .pytest_cache
