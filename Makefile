# Two front doors (README): `make quickstart` and `make test`. Both set everything up first.
# Override the torch wheel for a GPU machine, e.g. `make setup TORCH="torch==2.13.0 --index-url ..."`.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
PY := $(VENV)/bin/python
OUT ?= results/quickstart

.PHONY: setup quickstart test test-fast lint bench clean-venv

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip "setuptools>=77" wheel
	$(PY) -m pip install -q $(TORCH)
	@# setuptools' editable install of this flat layout always prints an informational "Editable installation"
	@# notice (a finder maps archscale.<folder> to each folder); it needs no action, so it is filtered out.
	PYTHONWARNINGS="ignore:Editable installation" $(PY) -m pip install -q -e '.[dev]'
	touch $@

quickstart: setup
	$(VENV)/bin/archscale quickstart --out $(OUT)

# The whole suite, slow end-to-end tests included (CI runs exactly this through .ci/run).
test: setup lint
	bash scripts/install-chromium
	bash scripts/install-postgres
	$(PY) -m pytest -q

# ruff: lint and formatting, configured in pyproject.toml (part of `make test`, so CI enforces it)
lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

bench: setup
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean-venv:
	rm -rf $(VENV)
