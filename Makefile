# Two entry points for a fresh machine: `make run` and `make test`.
# TORCH_SPEC is installed before the project so that a CPU build can be chosen;
# override it, e.g. `make test TORCH_SPEC=torch` or `TORCH_SPEC="torch --index-url ..."`.
PYTHON     ?= python3
VENV       ?= .venv
TORCH_SPEC ?= torch==2.13.0
SCENARIO   ?= scenarios/urban_50dev.yaml
PYTEST_ARGS ?=
# Extras installed with the project: the tests include a local Ray instance (ray extra);
# `make test EXTRAS=test` skips that test instead (remove .venv first to reinstall).
EXTRAS     ?= test,ray

BIN := $(VENV)/bin

.PHONY: run test venv clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH_SPEC)
	$(BIN)/pip install --quiet -e '.[$(EXTRAS)]'
	touch $@

venv: $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/python -m cosim run $(SCENARIO)

test: $(VENV)/.installed
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) runs .pytest_cache
