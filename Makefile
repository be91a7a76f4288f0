# actorgrpc: `make run` starts the demo, `make test` runs the suite; both set up .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROTOS := $(wildcard protos/actorgrpc/v1/*.proto)

NODE_DIR := clients/node

.PHONY: all run test lint protos check-protos bench docs clean node

all: test

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Regenerate generated/ from protos/ (never edit generated/ by hand).
protos: $(STAMP)
	rm -rf generated/actorgrpc
	mkdir -p generated/actorgrpc/v1
	$(PY) -m grpc_tools.protoc -I protos --python_out=generated --pyi_out=generated \
		--grpc_python_out=generated $(PROTOS)
	touch generated/actorgrpc/v1/__init__.py

# Fails when generated/ differs from what `make protos` writes.
check-protos: protos
	git diff --exit-code --stat -- generated/

run: $(STAMP)
	$(PY) examples/demo.py

# The Node.js client and actor (clients/node), installed from its lock file.
node:
	@if [ -f $(NODE_DIR)/package-lock.json ]; then \
		cd $(NODE_DIR) && npm ci --silent --no-audit --no-fund; \
	fi

test: $(STAMP) node
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest -q

# ruff, formatting, types (the package strictly, the tests and the README's
# examples loosely), and the layer contract (import-linter; tests/test_layers.py
# also sees the generated package and imports of the facade).
LINTED := actorgrpc tests bench examples
lint: $(STAMP)
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache
	$(PY) -m pytest -q -p no:cacheprovider tests/test_layers.py

# The benchmark's references: pykka and Thespian (the bench extra), and Ray
# when it installs here (its figures are skipped with a note otherwise).
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	$(PY) -m pip install --quiet 'ray>=2.9' || echo "note: Ray did not install; its figures will be skipped"
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(PY) -m bench

# The API reference (docs/api: Sphinx autodoc of actorgrpc.__all__) into
# build/docs/index.html; any warning, an unresolved name included, fails it.
DOCS_STAMP := $(VENV)/.docs-installed
$(DOCS_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,docs]'
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	$(VENV)/bin/sphinx-build -W --keep-going -n -b html docs/api build/docs

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build/docs
