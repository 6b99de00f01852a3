# gwms: two set-up commands. `make demo` runs the embedded system, `make test` runs the tests.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.gwms-installed

.PHONY: test demo venv clean bench

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

venv: $(STAMP)

## make test: create .venv if missing, install gwms with its test extras, run pytest
test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

## make demo: the embedded all-in-one system (gwms up) with the sample workload of examples/,
## live in the terminal; it keeps running until Ctrl-C. DEMO_EXIT=1: stop once the work is done.
DEMO_DATA ?= demo-data
demo: $(STAMP)
	$(PY) -m gwms demo --data $(DEMO_DATA)$(if $(DEMO_EXIT), --exit-when-done)

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache
