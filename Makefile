# Two commands do all set-up on a fresh machine:
#   make demo   -> creates .venv, installs, runs the end-to-end demo
#   make test   -> creates .venv if needed, installs, runs the test suite
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow bench lint venv clean docs browser

$(STAMP): pyproject.toml requirements-dev.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --upgrade --quiet pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/stylegan3d demo --out demo-out

test: lint browser
	$(BIN)/python -m pytest -q

# Headless browser for the viewer tests (tests/viewer): Debian's chromium, installed with apt-get when it is
# missing and apt-get can run (root or passwordless sudo); otherwise those tests skip and say why.
BROWSER_CMDS := chromium chromium-browser google-chrome google-chrome-stable
browser:
	@for b in $(BROWSER_CMDS); do command -v $$b >/dev/null 2>&1 && exit 0; done; \
	if ! command -v apt-get >/dev/null 2>&1; then echo "note: no chromium and no apt-get: viewer browser tests will skip"; exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then SUDO=; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; \
	else echo "note: no chromium and apt-get needs root: viewer browser tests will skip"; exit 0; fi; \
	echo "installing chromium (apt-get) for the viewer browser tests"; \
	$$SUDO apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null \
	  || echo "note: could not install chromium: viewer browser tests will skip"

bench: $(STAMP)
	$(BIN)/stylegan3d bench --preset demo --preset 4mm-f64 --json bench.json

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

lint: $(STAMP)
	$(BIN)/ruff check --no-cache src tests examples
	$(BIN)/ruff format --check --no-cache src tests examples

# docs/cli.md is the CLI's own --help text (tests/cli checks that it is current)
docs: $(STAMP)
	$(BIN)/python -m stylegan3d.cli.reference > docs/cli.md.tmp && mv docs/cli.md.tmp docs/cli.md

clean:
	rm -rf $(VENV) demo-out
