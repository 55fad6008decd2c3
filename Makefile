# `make run` and `make test` bootstrap everything they need: .venv from requirements.lock
# and node_modules from package-lock.json, skipped when already up to date.
VENV       := .venv
PY         := $(VENV)/bin/python
PY_STAMP   := $(VENV)/.bootstrapped
NODE_STAMP := node_modules/.bootstrapped
PYTHON     ?= python3
# pytest-xdist workers of `make test`: the stack tests in one, the rest beside them.
TEST_WORKERS ?= 2

.PHONY: bootstrap run test lint bench contracts migrate clean-data chromium chaos

bootstrap: $(PY_STAMP) $(NODE_STAMP)

$(PY_STAMP): pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

$(NODE_STAMP): package.json package-lock.json
	# `npm ci` refuses a lock that holds only this platform's anvil binary; install honours it.
	npm install --no-audit --no-fund --loglevel=error
	touch $@

# The admin console's browser tests drive Debian's chromium through Playwright (no
# `playwright install`); CI runs as root on a fresh Debian 12, elsewhere sudo is used.
chromium:
	@command -v chromium >/dev/null || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -q && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }

run: bootstrap
	$(VENV)/bin/tollgate dev

lint: $(PY_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

test: bootstrap lint chromium
	$(VENV)/bin/pytest -n $(TEST_WORKERS) --dist loadgroup

# The fault tests at full size (`make test` runs them reduced): the worker SIGKILLed during a
# 1,000-item batch, 2,000 hold releases and a month of dunning; Temporal and PostgreSQL
# restarted mid-run; the Stripe sandbox failing 20% of calls; the chain node stopped during
# anchoring. Prints each scenario's movements expected, performed, duplicated and lost.
chaos: bootstrap
	TOLLGATE_FAULT_SCALE=full $(VENV)/bin/pytest -m faults --timeout=3600

bench: bootstrap
	$(PY) -m benchmarks

contracts: bootstrap
	$(PY) -m devstack.contracts

migrate: $(PY_STAMP)
	$(VENV)/bin/tollgate migrate

clean-data:
	rm -rf .data
