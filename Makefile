# The two commands README.md gives first:
#   make run   creates .venv, installs cnnviz, serves http://127.0.0.1:8000 with the digit model
#   make test  installs the dev tools, Chromium, fonts and the MNIST data, then runs every test
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
# A CPU build of PyTorch, the oracle the gradient tests compare against.
TORCH  ?= torch==2.13.0
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test install install-dev system-deps data lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[dev]' '$(TORCH)'
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: install
	$(BIN)/cnnviz serve --host $(HOST) --port $(PORT)

# Debian's Chromium (Playwright drives it; no browser download), CJK fonts so 简体中文
# renders in screenshots, and npm for `cnnviz data fetch`. Commands are checked, not package
# names: npm often comes with a nodejs from elsewhere, and Debian's npm would conflict with it.
system-deps:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v npm >/dev/null 2>&1 || missing="$$missing npm"; \
	dpkg -s fonts-noto-cjk >/dev/null 2>&1 || missing="$$missing fonts-noto-cjk"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

data: install
	$(BIN)/cnnviz data fetch

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# pytest exits 5 when it collected nothing: an empty suite must fail, not pass quietly.
# CNNVIZ_FAIL_ON_SKIP=1: a skipped test fails the run (tests/conftest.py): everything a test
# needs is installed above, so a skip can only hide a broken import or a missing oracle.
test: install-dev system-deps data lint
	CNNVIZ_FAIL_ON_SKIP=1 $(BIN)/pytest; s=$$?; \
	if [ $$s -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$s

bench: install-dev
	$(BIN)/python benchmarks/bench_engine.py
	$(BIN)/python benchmarks/bench_api.py
	$(BIN)/python benchmarks/bench_train.py
	$(BIN)/python benchmarks/bench_blocks.py
	$(BIN)/python benchmarks/bench_page.py
	$(BIN)/python benchmarks/bench_train_ws.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache test-artifacts
