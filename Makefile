# Two entry points for a fresh machine: `make run` and `make test`.
# TORCH_SPEC is installed before the project so that a CPU build can be chosen;
# override it, e.g. `make test TORCH_SPEC=torch` or `TORCH_SPEC="torch --index-url ..."`.
PYTHON     ?= python3
VENV       ?= .venv
TORCH_SPEC ?= torch==2.13.0
SCENARIO   ?= scenarios/urban_50dev.yaml
PYTEST_ARGS ?=
# Extras installed for `make test`: the tests include a local Ray instance (ray extra);
# `make test EXTRAS=test` installs without Ray and skips that test.
EXTRAS     ?= test,ray
# Extras installed for `make run` / `make venv`: none, running needs only the core dependencies.
RUN_EXTRAS ?=

BIN := $(VENV)/bin

# One install stamp per (TORCH_SPEC, extras): changing either reinstalls instead of being ignored.
stamp = $(VENV)/.installed-$(1)-$(shell printf '%s|%s' '$(TORCH_SPEC)' '$(2)' | cksum | cut -d' ' -f1)
RUN_STAMP  := $(call stamp,run,$(RUN_EXTRAS))
TEST_STAMP := $(call stamp,test,$(EXTRAS))

define install
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH_SPEC)
	$(BIN)/pip install --quiet -e '.$(if $(strip $(1)),[$(strip $(1))])'
endef

.PHONY: run test paper paper-quick results venv clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(call install,$(RUN_EXTRAS))
	touch $@

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(call install,$(EXTRAS))
	touch $@

venv: $(RUN_STAMP)

run: $(RUN_STAMP)
	$(BIN)/cosim run $(SCENARIO)

test: $(TEST_STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The README's Results: every (data split, method) of analysis/paper.yaml × its seeds, then
# runs/paper/results.md. Resumable (finished runs are reused); PAPER_WORKERS runs at a time.
PAPER_WORKERS ?= 2
paper: $(RUN_STAMP)
	$(BIN)/python -m analysis paper --out runs/paper --workers $(PAPER_WORKERS)

# The 5-seed subset the README's tables come from today (analysis/paper_quick.yaml).
paper-quick: $(RUN_STAMP)
	$(BIN)/python -m analysis paper --spec analysis/paper_quick.yaml --out runs/paper_quick --workers $(PAPER_WORKERS)

# Every table of the README's Results, one spec after another, each into runs/<spec>/
# (resumable; later specs reuse the runs of earlier ones, see `reuse:` in the specs).
RESULTS_SPECS ?= paper_quick paper_tuned lambda_sweep paper_d01 kernel holdout fedavg_ft_deploy paper_d05 long
results: $(RUN_STAMP)
	set -e; for spec in $(RESULTS_SPECS); do \
	    $(BIN)/python -m analysis paper --spec analysis/$$spec.yaml --out runs/$$spec --workers $(PAPER_WORKERS); \
	done

clean:
	rm -rf $(VENV) runs .pytest_cache
