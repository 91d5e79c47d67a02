# Two entry points on a fresh clone (each installs what it needs into .venv first):
#   make run    the main job on the built-in default config (configs/default.py)
#   make test   the test suite
#   make tensorboard   TensorBoard on $(WORKDIR) (installs the test/dev extras)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
WORKDIR ?= runs/default

.PHONY: run test tensorboard install install-test clean

$(VENV)/.runtime: requirements/lock-py311.txt setup.py scripts/install_system_deps.sh
	bash scripts/install_system_deps.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements/lock-py311.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

$(VENV)/.test: $(VENV)/.runtime requirements/test-py311.txt
	$(PY) -m pip install -q --disable-pip-version-check -r requirements/test-py311.txt
	touch $@

install: $(VENV)/.runtime
install-test: $(VENV)/.test

run: $(VENV)/.runtime
	$(PY) -m prm_jax.main --config=configs/default.py --workdir=$(WORKDIR)

test: $(VENV)/.test
	$(PY) -m pytest -q tests

tensorboard: $(VENV)/.test
	$(VENV)/bin/tensorboard --logdir $(WORKDIR)

clean:
	rm -rf $(VENV) runs
