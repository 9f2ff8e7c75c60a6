# Two commands do all set-up on a fresh machine:
#   make demo   -> creates .venv, installs, runs the end-to-end demo
#   make test   -> creates .venv if needed, installs, runs the test suite
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow bench lint venv clean docs

$(STAMP): pyproject.toml requirements-dev.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --upgrade --quiet pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/stylegan3d demo --out demo-out

test: $(STAMP)
	$(BIN)/ruff check --no-cache src tests examples
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/stylegan3d bench --preset demo --preset 4mm-f64 --json bench.json

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

lint: $(STAMP)
	$(BIN)/ruff check --no-cache src tests examples

clean:
	rm -rf $(VENV) demo-out
