# `make demo`: from nothing to a trained, evaluated model.  `make test`: from nothing to a green suite.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: install demo test test-fast lint mutation mutation-sample web web-deps clean

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

# The tests run in TEST_WORKERS processes (pytest-xdist): most are single-threaded.
TEST_WORKERS ?= 2

test: lint web-deps
	$(PY) -m pytest -q -n $(TEST_WORKERS) --durations=20 tests
	$(PY) -m pytest -q --nbmake notebooks

test-fast: install
	$(PY) -m pytest -q -n $(TEST_WORKERS) -m "not slow" tests

# `make web`: the browser page on http://127.0.0.1:8000/ with the quickstart model (trained first if
# there is none), exported to web/model. The page's one dependency, onnxruntime-web, is pinned in
# web/package-lock.json and served from web/node_modules.
WEB_PORT ?= 8000

web-deps:  # without npm, the browser tests are skipped (and fail under CI)
	@if command -v npm >/dev/null; then $(MAKE) --no-print-directory web/node_modules/.package-lock.json; \
	else echo "npm not found: tests/test_web.py will be skipped"; fi

web/node_modules/.package-lock.json: web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund --ignore-scripts

web: install web-deps
	test -f runs/quickstart/best.json || $(PY) scripts/train.py --epochs 3 --batch-size 128
	$(PY) scripts/export.py --checkpoint runs/quickstart --web web/model --verify 0
	@echo "the page: http://127.0.0.1:$(WEB_PORT)/ (Ctrl-C stops the server)"
	$(PY) -m http.server $(WEB_PORT) --bind 127.0.0.1 --directory web

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

# `make mutation-sample`: the same, on MUTATION_SAMPLE mutants drawn at random from each module
# (benchmarks/mutation_sample.py): an estimate of every module's score in under an hour. The
# first mutmut run generates the mutants (and tests a handful). MUTATION_SEED draws another sample.
MUTATION_SAMPLE ?= 70
MUTATION_SEED ?= 0

mutation-sample: install
	$(PY) -m pip install --quiet $(MUTMUT)
	$(VENV)/bin/mutmut run --max-children $(MUTATION_JOBS) 'transformer_tiny.tokenizer.*__mutmut_1'
	$(VENV)/bin/mutmut run --max-children $(MUTATION_JOBS) \
		$$($(PY) benchmarks/mutation_sample.py $(MUTATION_SAMPLE) --seed $(MUTATION_SEED))
	$(PY) benchmarks/mutation_report.py --command "make mutation-sample"

clean:
	rm -rf $(VENV) runs mutants .pytest_cache .ruff_cache web/node_modules web/model
