# return-handler: the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
# What .venv installs: the locked, hashed set (make lock writes it from pyproject.toml).
DEV_LOCK := requirements/dev.lock.txt
# The pip that installs it, so a fresh install is made by the same installer every time.
PIP_VERSION := 26.3

.PHONY: help demo test lint lint-deploy typecheck unit integration schemas asyncapi kafka-up kafka-down kafka-status sandbox run clean docs

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

# --clear: a venv made anew holds the lock's packages and nothing left over from before.
$(INSTALLED): pyproject.toml $(DEV_LOCK)
	@echo "==> creating $(VENV) from $(DEV_LOCK) and installing return-handler into it"
	$(PYTHON) -m venv --clear $(VENV)
	$(BIN)/pip install --quiet --upgrade 'pip==$(PIP_VERSION)'
	$(BIN)/pip install --quiet --require-hashes -r $(DEV_LOCK)
	$(BIN)/pip install --quiet --no-deps -e .
	$(BIN)/pip check
	@touch $@

venv: $(INSTALLED)

.PHONY: lock lock-check
lock: ## Rewrite requirements/*.lock.txt from pyproject.toml (uv; LOCK_ARGS=--upgrade-package=NAME)
	bash scripts/lock.sh $(LOCK_ARGS)

lock-check: ## Fail if requirements/*.lock.txt are out of date with pyproject.toml (asks the index)
	bash scripts/lock.sh --check

demo: $(INSTALLED) ## Broker, sandbox and service up, example events in, outcomes shown, all stopped
	bash scripts/demo.sh

test: $(INSTALLED) ## Lint, docs site build, type-check, schema check, unit and integration tests (starts the broker)
	bash scripts/test.sh

# NO_MKDOCS_2_WARNING: Material's notice of its end of life (docs/develop/decisions.md says it).
DOCS_ADDR ?= 127.0.0.1:8000
docs: $(INSTALLED) ## Serve the documentation site (docs/, mkdocs.yml) on DOCS_ADDR, rebuilt on every save
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --dev-addr $(DOCS_ADDR)

lint: $(INSTALLED) ## ruff
	$(BIN)/ruff check service capillary_sandbox tests bench
	$(BIN)/ruff format --check service capillary_sandbox tests bench

typecheck: $(INSTALLED) ## mypy --strict
	$(BIN)/mypy

unit: $(INSTALLED) ## Unit tests only (no broker needed)
	$(BIN)/pytest tests/unit -q

integration: $(INSTALLED) ## Integration tests against a running broker (make kafka-up)
	$(BIN)/pytest tests/integration -q

lint-deploy: ## hadolint the Dockerfile, helm lint and template the chart (installs both once)
	bash scripts/lint-deploy.sh

schemas: $(INSTALLED) ## Regenerate schemas/ from the models
	$(BIN)/return-handler schemas --out schemas

asyncapi: ## Validate schemas/asyncapi.yaml with the official AsyncAPI parser (npm ci's it once)
	bash scripts/asyncapi.sh

kafka-up: ## Start the local single-node KRaft broker (fetches the jars once)
	bash scripts/kafka.sh up

kafka-down: ## Stop the local broker
	bash scripts/kafka.sh down

kafka-status: ## Is the local broker running?
	bash scripts/kafka.sh status

sandbox: $(INSTALLED) ## Run the Capillary sandbox with the demo seed on :8765
	$(BIN)/capillary-sandbox --seed examples/sandbox-seed.json

# The sandbox's demo credentials and the demo policy, unless the environment says otherwise.
run: export RETURN_HANDLER_CAPILLARY__USERNAME ?= demo
run: export RETURN_HANDLER_CAPILLARY__PASSWORD ?= demo
run: export RETURN_HANDLER_POLICY_PATH ?= examples/policy.yaml
run: $(INSTALLED) ## Run the service against the local broker and sandbox (demo credentials)
	$(BIN)/return-handler run

clean: ## Remove the virtualenv, caches and local broker data
	-bash scripts/kafka.sh down
	rm -rf $(VENV) .cache .pytest_cache .mypy_cache .ruff_cache scripts/asyncapi/node_modules

.PHONY: chaos chaos-short
chaos: $(INSTALLED) ## Chaos run: 5,000 events, 5 kills, a broker restart, 30 s of 503s, 20 s of 401s
	PYTHONPATH=. $(BIN)/python bench/chaos.py --out bench/results/chaos.json

chaos-short: $(INSTALLED) ## Short chaos run: 300 events, one kill, 10 s of 503s
	PYTHONPATH=. $(BIN)/python bench/chaos.py --events 300 --kills 1 --no-broker-restart \
		--error-window 10 --auth-window 0 --timeout 300 --out bench/results/chaos-short.json

.PHONY: bench bench-floor bench-storm bench-chart profile
bench: $(INSTALLED) ## Throughput bench: 20,000 mixed events at 1,200/s, 50 ms a call; bench/results/latest.json
	PYTHONPATH=. $(BIN)/python bench/throughput.py --out bench/results/latest.json

bench-floor: $(INSTALLED) ## CPU per event of the libraries alone (Kafka, pydantic, HTTP) on make bench's events; bench/results/floor.json
	PYTHONPATH=. $(BIN)/python bench/floor.py --out bench/results/floor.json

# MIX=realistic: make bench's mix as a storm; throughput.py picks that run's defaults.
MIX ?= loyalty
bench-storm: $(INSTALLED) ## Storm: 10,000 loyalty returns at once, 300/min, storm.json (MIX=realistic: 5,000 mixed, 1,500/min, storm-realistic.json)
	PYTHONPATH=. $(BIN)/python bench/throughput.py --storm --mix $(MIX)

# A profiled run is slower (py-spy pauses the service to sample it): its own result file.
profile: $(INSTALLED) ## make bench with py-spy on the service for 20 s; bench/results/profile.json, the profile in its logs
	PYTHONPATH=. $(BIN)/python bench/throughput.py --profile 20 --out bench/results/profile.json

# BOUNDS= or RATES= (empty) leaves that sweep out.
BOUNDS ?= 1,10,100,1000
RATES ?= 600,900,1200,1500,2000
bench-chart: $(INSTALLED) ## Bench at BOUNDS in flight (in-flight.png), then at RATES offered (docs/offered-rate.png); ~15 min
	PYTHONPATH=. $(BIN)/python bench/chart.py sweep $(if $(BOUNDS),--bounds $(BOUNDS)) $(if $(RATES),--rates $(RATES))
