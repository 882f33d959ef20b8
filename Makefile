# Every target creates or reuses .venv and installs the pinned set first, so each works on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
# pytest-xdist workers: most tests wait on local servers, subprocesses and Airflow, so two overlap well on 2 cores
# (the tests that start a real Airflow form one group, run by one worker; tests/conftest.py); 0 runs in this process
PYTEST_WORKERS ?= 2

.PHONY: install test lint docs demo bench serve-local airflow clean

$(STAMP): pyproject.toml testbed/pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]' -e ./testbed
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# docs/ as a site in site/ (mkdocs.yml); --strict: a broken link, a missing page or a bad docstring fails
docs: install
	$(VENV)/bin/mkdocs build --strict --quiet

test: lint docs
	$(PY) -m pytest -q -p no:cacheprovider -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

demo: install
	$(VENV)/bin/multicloud demo

bench: install
	$(PY) bench/run.py

serve-local: install
	$(VENV)/bin/multicloud serve-local

airflow: install
	$(VENV)/bin/multicloud airflow-local

clean:
	rm -rf $(VENV) .demo .bench .pytest_cache .mypy_cache .ruff_cache site
