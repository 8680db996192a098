# Two entry points: `make demo` and `make test`. Both create .venv if missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q --disable-pip-version-check
WORKDIR ?= workdir/demo

.PHONY: demo test install install-dev clean

$(VENV)/.runtime: requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) -r requirements.txt
	$(PIP) --no-deps -e .
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PIP) torch==2.13.0
	$(PIP) -r requirements-dev.txt
	touch $@

install: $(VENV)/.runtime
install-dev: $(VENV)/.dev

demo: $(VENV)/.runtime
	$(PY) -m experiments.demo --workdir=$(WORKDIR)

test: $(VENV)/.dev
	$(PY) -m pytest tests

clean:
	rm -rf $(VENV) workdir
