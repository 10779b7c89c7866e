# legloop — two commands on a fresh machine (Python >= 3.11, pip, make):
#   make demo    set up, then run `legloop demo`
#   make test    set up, then run ruff, mypy and the test suite (what CI runs)
# Everything lands in .venv; system packages (OSMesa for headless rendering) are installed when running as root.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The exact versions of constraints.txt; torch is pinned so pip takes the CPU wheel where one lies on disk.
# Users who want a CUDA build: `make setup TORCH_SPEC='torch>=2.8'`.
TORCH_SPEC ?= torch==2.13.0
CONFORMANCE ?= $(abspath ../shared/conformance)
# Optional extras installed with legloop: the tests run `legloop sweep --ray` on a local Ray instance, so ray is in;
# `make setup EXTRAS=dev,train` leaves it out (sweeps then run on the process pool only).
EXTRAS ?= dev,train,ray

export MUJOCO_GL ?= osmesa
export PYOPENGL_PLATFORM ?= osmesa

.PHONY: setup demo test lint typecheck format bench clean system-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install --quiet -c constraints.txt "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -c constraints.txt -e ".[$(EXTRAS)]"
	touch $@

system-deps:
	@bash scripts/system-deps.sh

setup: $(VENV)/.installed system-deps

demo: setup
	$(BIN)/legloop demo

test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	@# Compile the EdgeDRNN, output-layer and governor kernels once (numba caches them on disk): on a fresh clone a
	@# board process started by a test would otherwise compile them (~50 s, more under the parallel tests' load).
	$(BIN)/python -c "from hil.board_emulator import warm_up; warm_up()"
	LEGLOOP_CONFORMANCE_DIR=$${LEGLOOP_CONFORMANCE_DIR:-$(CONFORMANCE)} $(BIN)/pytest -q -n 2 --dist loadfile

bench: setup
	$(BIN)/legloop bench --out bench.json

lint:
	$(BIN)/ruff check .

# Static types of the packages ([tool.mypy] in pyproject.toml).
typecheck:
	$(BIN)/mypy

format:
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
