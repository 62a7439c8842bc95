# `make demo`: from nothing to a trained, evaluated model.  `make test`: from nothing to a green suite.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: install demo train eval infer test test-fast lint mutation clean

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

install: $(VENV)/.installed

demo: install
	$(PY) scripts/train.py --epochs 3 --batch-size 128
	$(PY) scripts/eval.py
	$(PY) scripts/infer.py --text "Going good!" --max-new-tokens 64

lint: install
	$(PY) -m ruff check .

test: lint
	$(PY) -m pytest -q tests
	$(PY) -m pytest -q --nbmake notebooks

test-fast: install
	$(PY) -m pytest -q -m "not slow" tests

# `make mutation`: mutmut over the core modules ([tool.mutmut] in pyproject.toml) with the fast
# tests, then docs/mutation.md. Hours on 2 cores; not run by CI. Results are kept in mutants/, so
# a rerun (or an interrupted one) only tests what is new. One module at a time:
# `make mutation MUTATE='transformer_tiny.tokenizer.*'`.
MUTMUT := mutmut==3.8.1
MUTATION_JOBS ?= 2
MUTATE ?=

mutation: install
	$(PY) -m pip install --quiet $(MUTMUT)
	$(VENV)/bin/mutmut run --max-children $(MUTATION_JOBS) $(MUTATE)
	$(PY) benchmarks/mutation_report.py

clean:
	rm -rf $(VENV) runs mutants .pytest_cache .ruff_cache
