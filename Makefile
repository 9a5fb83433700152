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
# JavaScript example plugin), chromium (the reviewer page's browser test) and clang for wasm32-wasi
# (`tiergate new --lang c`; checked by building what the template needs: wasi-libc's stdio, linked
# with wasm-ld and the wasm32 builtins). Installed with apt when missing.
C_TOOLCHAIN_CHECK = \
	printf '\043include <stdio.h>\nint main(void) { return puts("") < 0; }\n' \
	| clang --target=wasm32-wasi -x c -o /dev/null - >/dev/null 2>&1 \
	|| missing="$$missing clang lld wasi-libc libclang-rt-14-dev-wasm32";

system-packages:
	@missing=""; $(SANDBOX_CHECKS) \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	command -v node >/dev/null 2>&1 || missing="$$missing nodejs"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	$(C_TOOLCHAIN_CHECK) \
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
