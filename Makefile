# Two commands on a fresh machine with only python3: `make run` and `make test`.
# uv comes from a bootstrap venv when it is not on PATH; the lock file pins everything.

PYTHON ?= python3
UV_VERSION := 0.13.8
BOOT := .venv-bootstrap
UV := $(or $(shell command -v uv 2>/dev/null),$(BOOT)/bin/uv)
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := $(PYTHON)

.PHONY: run test test-long lint bench install system-deps clean

install: .venv/.synced

$(BOOT)/bin/uv:
	$(PYTHON) -m venv $(BOOT)
	$(BOOT)/bin/pip install --quiet "uv==$(UV_VERSION)"

# Bytecode is compiled at install: asyncua's generated address-space code alone is ~9 MB of
# Python, and recompiling it on every start (PYTHONDONTWRITEBYTECODE is common) costs seconds.
.venv/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --compile-bytecode
	@touch $@

run: install  ## start the demo station (simulated devices) on http://127.0.0.1:8080
	.venv/bin/takt run

# Debian packages the tests run for real (nut-server's upsd and dummy-ups); quiet when present.
system-deps:
	@bash scripts/system-deps.sh

test: install system-deps  ## lint, then the test suite's short form
	.venv/bin/ruff check .
	.venv/bin/python -m pytest -q

test-long: install system-deps  ## the long soak/fault form as well
	.venv/bin/python -m pytest -q -m "slow or not slow"

bench: install  ## every benchmark, JSON lines on stdout
	@for b in bench/*.py; do .venv/bin/python $$b || exit 1; done

clean:
	rm -rf .venv $(BOOT) .pytest_cache .ruff_cache
