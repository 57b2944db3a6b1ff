# make test  — create the venv, install alicertd with its test extra, the system packages the
#              tests need and Pebble (the ACME test CA), then run the whole suite.
# make demo  — issue and deploy two certificates against Pebble and the local Alibaba Cloud
#              sandbox (no cloud account needed).
# make demo-accounts — the two-account setup: an instance role in account A, the CDN of account
#              B reached by STS AssumeRole (config/sandbox-accounts.toml).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: test demo demo-accounts venv system-deps pebble lint bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@bash scripts/system-deps.sh
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $@

system-deps:
	@bash scripts/system-deps.sh

pebble:
	@bash scripts/fetch-pebble.sh >/dev/null

test: venv system-deps pebble
	$(PY) -m pytest -q $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check daemon providers sandbox tests bench

demo: venv pebble
	$(PY) scripts/demo.py

demo-accounts: venv pebble
	$(PY) scripts/demo.py --accounts

bench: venv pebble
	bash bench/run.sh

clean:
	rm -rf $(VENV) tools build *.egg-info
