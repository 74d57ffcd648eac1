# Set-up on a fresh machine is `make demo` or `make test`; each creates .venv and installs everything.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-slow bench lint typecheck clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned: the CPU build on local disk (any other request pulls a multi-GB CUDA build)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	@command -v abc2midi >/dev/null 2>&1 || { \
	  (apt-get install -y -qq abcmidi >/dev/null 2>&1 || \
	   (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq abcmidi >/dev/null 2>&1)) \
	  && echo "installed abcmidi (abc2midi, midi2abc)" \
	  || echo "abcmidi could not be installed here: music datagen falls back to music21"; }
	touch $(STAMP)

demo: setup
	$(PY) -m simulator.demo

test: setup
	$(PY) -m pytest -q -x --durations=10

test-slow: setup
	$(PY) -m pytest -q -m slow

bench: setup
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) -m benchmarks.all

lint: setup
	$(VENV)/bin/ruff check bytesim_common datagen simulator benchmarks tests examples

# the core modules listed under [tool.mypy] in pyproject.toml
typecheck: setup
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
