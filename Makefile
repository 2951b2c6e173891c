# Two entry points for a fresh machine: `make demo` and `make test`. Everything they need is installed here.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# Extra pytest arguments, e.g. `make test PYTEST_ARGS="-k backbone"` or `make test PYTEST_ARGS="-m slow"`.
PYTEST_ARGS ?=

.PHONY: demo test venv clean

# Stamp files: re-run pip only when pyproject.toml changes.
$(VENV)/.stamp-base: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install -e .
	touch $@

$(VENV)/.stamp-test: $(VENV)/.stamp-base
	$(PIP) install -e '.[test]'
	touch $@

venv: $(VENV)/.stamp-base

demo: $(VENV)/.stamp-base
	$(PY) tools/evaluate.py configs/suites/synthetic_demo.py --work-dir work_dirs/demo

test: $(VENV)/.stamp-test
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) work_dirs
