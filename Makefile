# The two commands of the README's quick start. Each creates the virtual
# environment and installs what it needs on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: serve test lint system-deps bench bench-deps clean install-locked lock

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## Install, train the default model if there is none, and serve the API and the editor page.
serve: $(STAMP)
	$(BIN)/xinxi serve

## Install everything the tests need (Debian packages, Python packages) and run the whole suite.
test: system-deps $(STAMP)
	$(BIN)/ruff check model training service tests bench
	$(BIN)/mypy model service
	$(BIN)/python -m pytest

## Debian packages the tests use: venv support, Chromium and a CJK font for the
## browser test (no browser download), the PostgreSQL client tools.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT  := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq
system-deps:
	@missing=""; \
	$(PYTHON) -c "import ensurepip, venv" 2>/dev/null || missing="$$missing python3-venv"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	[ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || missing="$$missing fonts-wqy-microhei"; \
	command -v pg_isready >/dev/null 2>&1 || missing="$$missing postgresql-client"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && $(APT) $$missing; \
	fi

## wrk drives the HTTP load benchmark (bench/load.py).
bench-deps:
	@command -v wrk >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && $(APT) wrk; }

## Install the exact versions of requirements.lock, every file checked against its hash, then xinxi
## itself without dependencies: the reproducible install for a server (README, Dependencies).
install-locked:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

## Write requirements.lock again from pyproject.toml (after a dependency or its bounds changed).
lock: $(STAMP)
	$(BIN)/python -m pip install --quiet 'pip-tools>=7.4,<8'
	$(BIN)/pip-compile --quiet --extra dev --generate-hashes --strip-extras --no-emit-find-links \
	  --no-emit-index-url --output-file requirements.lock pyproject.toml

lint: $(STAMP)
	$(BIN)/ruff check model training service tests bench
	$(BIN)/mypy model service

bench: $(STAMP) bench-deps
	$(BIN)/python bench/speed.py
	$(BIN)/python bench/load.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache test-artifacts
