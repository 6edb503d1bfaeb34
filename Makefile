# The two commands a newcomer needs:  make demo   and   make test
# Both create their own virtualenvs under .venv/ and install what they need.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
PIP_FLAGS ?= --quiet --disable-pip-version-check
PYTEST_ARGS ?=
# e.g. NOX_ARGS="-s full" for the two full SQLite sessions only; see noxfile.py.
NOX_ARGS ?=

.PHONY: help demo test bench lint docs clean

help:
	@echo "make demo   run the example project at http://127.0.0.1:8000/admin/ (admin / admin)"
	@echo "make test   the test matrix: Django 4.2 to 6.1 on Python 3.10 to 3.13 (SQLite), and"
	@echo "            PostgreSQL + Redis (started by .ci/services); see docs/development.md"
	@echo "make bench  benchmarks (figures in docs/performance.md)"
	@echo "make lint   ruff and mypy"
	@echo "make docs   the documentation site, strictly, into site/"

# venv DIR PYTHON REQUIREMENTS...: (re)install only when pyproject.toml changed.
define venv
	@if [ ! -x $(1)/bin/python ]; then echo "Creating $(1) with $(2)"; $(2) -m venv $(1); fi
	@if [ ! -f $(1)/.installed ] || [ pyproject.toml -nt $(1)/.installed ]; then \
		echo "Installing into $(1)"; \
		$(1)/bin/python -m pip install $(PIP_FLAGS) -e '.[test]' $(3) && touch $(1)/.installed; \
	fi
endef

demo:
	$(call venv,.venv/demo,$(PYTHON),)
	@.venv/demo/bin/python example_project/manage.py demo $(DEMO_ARGS)

# nox reuses its virtualenvs under .nox/ (reinstalling when pyproject.toml changes). The closing
# line is .ci/summary's total over every session's pytest report, printed even when one failed.
.venv/nox/.installed:
	@echo "Creating .venv/nox with $(PYTHON)"
	@$(PYTHON) -m venv .venv/nox
	@.venv/nox/bin/python -m pip install $(PIP_FLAGS) 'nox>=2024.10.9'
	@touch .venv/nox/.installed

test: .venv/nox/.installed
	@bash .ci/ensure-browser
	@rm -rf .nox/reports
	@status=0; .venv/nox/bin/nox $(NOX_ARGS) -- $(PYTEST_ARGS) || status=$$?; \
		$(PYTHON) .ci/summary .nox/reports || { [ $$status -ne 0 ] || status=1; }; \
		exit $$status

bench:
	$(call venv,.venv/demo,$(PYTHON),)
	.venv/demo/bin/python bench/run_all.py

# ruff and mypy, as the nox session "lint" of make test runs them.
lint: .venv/nox/.installed
	.venv/nox/bin/nox -s lint

# The documentation site, built strictly into site/ (open site/index.html).
docs: .venv/nox/.installed
	.venv/nox/bin/nox -s docs

clean:
	rm -rf .venv .nox .pytest_cache site build dist example_project/db.sqlite3 example_project/media
