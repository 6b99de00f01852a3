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

## make demo: the embedded all-in-one system with a sample workload
demo: $(STAMP)
	@echo "make demo: the all-in-one demo (gwms up + sample workload) arrives with the frontend (issue 6)."
	@echo "Until then, try: $(VENV)/bin/gwms --help"

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache
