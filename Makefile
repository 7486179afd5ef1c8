# The two set-up commands: `make demo` and `make test`. Each builds .venv when absent.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench venv clean

$(STAMP): pyproject.toml setup.py src/spikegen/_native.c
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# The demo's own folder: rerunning `make demo` replaces the demo's files there (and only those).
demo: $(STAMP)
	$(VENV)/bin/spikegen demo -o outputs/demo --overwrite

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) benchmarks/bench_spikes.py

clean:
	rm -rf $(VENV) outputs
