# The whole set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch and torchvision are installed first, pinned, so that the range in pyproject.toml
# never pulls a newer (multi-GB) build.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
# Not PIP_QUIET: make exports command-line variables, and pip reads PIP_* from the environment.
PIP_FLAGS ?= -q

.PHONY: venv demo test bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_FLAGS) --upgrade pip
	$(PY) -m pip install $(PIP_FLAGS) $(TORCH_SPEC)
	$(PY) -m pip install $(PIP_FLAGS) -e '.[test,demo]'
	touch $@

# dark-data on the embedded default (ephemeral Prefect server, SQLite, local files) over a
# sample store of MNIST digits under ./demo; `gan-augment demo` is the library-only version.
demo: venv
	$(PY) -m pipelines.demo --workdir demo

test: venv
	$(PY) -m pytest $(PYTEST_ARGS)

bench: venv
	$(PY) benchmarks/train_throughput.py

clean:
	rm -rf $(VENV) demo .pytest_cache
