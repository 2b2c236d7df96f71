# The two commands of the README's quick start. Each creates the virtual
# environment and installs what it needs on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: serve test lint system-deps bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## Install, train the default model if there is none, and serve the API and the editor page.
serve: $(STAMP)
	$(BIN)/xinxi serve

## Install everything the tests need (Python packages, Chromium) and run the whole suite.
test: $(STAMP) system-deps
	$(BIN)/ruff check model training service tests bench
	$(BIN)/mypy model service
	$(BIN)/python -m pytest

## Chromium for the browser test, from Debian's packages (no browser download).
system-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-microhei; }

lint: $(STAMP)
	$(BIN)/ruff check model training service tests bench
	$(BIN)/mypy model service

bench: $(STAMP)
	$(BIN)/python bench/speed.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache test-artifacts
