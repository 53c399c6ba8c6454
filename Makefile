# Quick start: `make demo` (export + validate + run the shipped lane model) and `make test`.
# Both create .venv idempotently; stamps re-install only when pyproject.toml changes.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch first, pinned: pip then takes the CPU wheel from local disk instead of a multi-GB CUDA build.
TORCH := torch==2.13.0
DEMO_OUT ?= demo_out

.PHONY: demo test test-slow lint bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(VENV)/.stamp-demo: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[export,onnxruntime]'
	touch $@

$(VENV)/.stamp-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[export,onnxruntime,dev,lidar]' 'openvino>=2025.0' 'nncf>=2.14' 'triton>=3.2'
	touch $@ $(VENV)/.stamp-demo

demo: $(VENV)/.stamp-demo
	$(BIN)/edge-export lane --to onnx --out $(DEMO_OUT)/lane
	$(BIN)/edge run $(DEMO_OUT)/lane --source synthetic:90 --out $(DEMO_OUT)/run

# Two workers (pytest-xdist; a 2-core CI machine's both cores: most test time is single-threaded Python in
# exporters and quantizers), idle ones stealing queued tests. The slowest tests are listed: the suite must
# stay fast on slow CPUs too.
XDIST := -n 2 --dist worksteal

test: $(VENV)/.stamp-test
	$(BIN)/python -m pytest -q $(XDIST) --durations=25

test-slow: $(VENV)/.stamp-test
	$(BIN)/python -m pytest -q $(XDIST) -m slow --durations=15

lint: $(VENV)/.stamp-test
	$(BIN)/ruff check .

bench: $(VENV)/.stamp-demo
	$(BIN)/python benchmarks/lane_cpu.py
	$(BIN)/python benchmarks/stream_cpu.py

clean:
	rm -rf $(DEMO_OUT) .pytest_cache .ruff_cache
