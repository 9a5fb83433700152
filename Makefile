# tiergate — the two Quick-start commands are `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
APT_GET := $(shell command -v sudo >/dev/null 2>&1 && [ "$$(id -u)" != 0 ] && echo sudo) apt-get

.PHONY: run test bench lint clean system-packages sandbox-packages wrk

$(BIN)/tiergate: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.test-deps: $(BIN)/tiergate
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

# Serve on embedded storage (./.tiergate) with the example functions deployed.
run: $(BIN)/tiergate sandbox-packages
	$(BIN)/tiergate serve --deploy examples/functions

# What the function sandbox needs (docs/isolation.md): bubblewrap and libseccomp2.
SANDBOX_CHECKS = \
	command -v bwrap >/dev/null 2>&1 || missing="$$missing bubblewrap"; \
	ldconfig -p 2>/dev/null | grep -q libseccomp.so.2 || missing="$$missing libseccomp2";

sandbox-packages:
	@missing=""; $(SANDBOX_CHECKS) \
	if [ -n "$$missing" ]; then $(APT_GET) update -qq && $(APT_GET) install -y -qq $$missing; fi

# System packages the tests use, besides the sandbox's: redis-server (the Redis backend), node (the
# JavaScript example plugin) and chromium (the reviewer page's browser test). Installed with apt
# when missing.
system-packages:
	@missing=""; $(SANDBOX_CHECKS) \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	command -v node >/dev/null 2>&1 || missing="$$missing nodejs"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then $(APT_GET) update -qq && $(APT_GET) install -y -qq $$missing; fi

test: $(VENV)/.test-deps system-packages
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/python -m pytest

wrk:
	@command -v wrk >/dev/null 2>&1 || ($(APT_GET) update -qq && $(APT_GET) install -y -qq wrk)

bench: $(VENV)/.test-deps wrk
	$(BIN)/python bench/run.py
	$(BIN)/python bench/workqueue.py
	$(BIN)/python bench/graphs.py

lint: $(VENV)/.test-deps
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .tiergate bench/results
