# The two commands the README promises: `make run` and `make test`. Both work on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev
RUNSTAMP := $(VENV)/.installed

.PHONY: run test check lint typecheck layers unit bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(RUNSTAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev,bedrock,postgres]'
	touch $@ $(RUNSTAMP)

run: $(RUNSTAMP)
	$(BIN)/portico serve $(if $(CONFIG),--config $(CONFIG),) --host $(or $(HOST),127.0.0.1) --port $(or $(PORT),8080)

test: $(STAMP) check

check: lint typecheck layers unit

lint: $(STAMP)
	$(BIN)/ruff format --check src tests
	$(BIN)/ruff check src tests

typecheck: $(STAMP)
	$(BIN)/mypy

layers: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/python scripts/check_module_size.py

unit: $(STAMP)
	@$(BIN)/pytest -q --cov=portico --cov-report=term; rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest ran no test: failing" >&2; exit 1; fi; exit $$rc

bench: $(RUNSTAMP)
	PORTICO_BIN=$(abspath $(BIN))/portico bash bench/run.sh

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

# Two gateways beside PostgreSQL and Redis in containers (compose.yaml); .env holds the shared secrets, made once.
.PHONY: compose-up compose-down
compose-up: .env
	docker compose up --build --detach
	@echo "gateways: http://127.0.0.1:8081 and http://127.0.0.1:8082 (client key: PORTICO_API_KEY in .env)"

compose-down:
	docker compose down

.env:
	@$(PYTHON) -c "import base64, os, secrets; print(f'PORTICO_SECRET_KEY={base64.urlsafe_b64encode(os.urandom(32)).decode()}'); print(f'PORTICO_API_KEY=sk-portico-{secrets.token_hex(16)}'); print(f'POSTGRES_PASSWORD={secrets.token_hex(16)}')" > $@
	@chmod 600 $@
