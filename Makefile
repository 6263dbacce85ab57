# Set-up is part of every target: a fresh machine needs only python3 (>= 3.10) and make.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# the package and its runtime dependencies only (what `make demo` needs): no test tools, no
# byte-compiling of every installed module (Python compiles what it imports)
RUNTIME := $(VENV)/.runtime

.PHONY: demo test test-fast test-slow lint typecheck bench clean

$(RUNTIME): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --no-compile -e .
	touch $(RUNTIME)

$(STAMP): $(RUNTIME)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

demo: $(RUNTIME)
	$(VENV)/bin/recperf search --gpu a100-80gb --workload search/data/seed_reuse_medium.toml
	@echo "the report (Markdown) is the 'report:' path above; the study keeps the grid's result (run again: nothing to redo)"

lint: $(STAMP)
	$(VENV)/bin/ruff check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

# The default suite (the README's test command): lint, types, and every test not marked slow.
test: lint typecheck
	$(PY) -m pytest -q -m "not slow"

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow || [ $$? -eq 5 ]

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
