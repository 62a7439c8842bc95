# `make demo`: from nothing to a trained, evaluated model.  `make test`: from nothing to a green suite.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: install demo train eval infer test test-fast lint clean

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

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
