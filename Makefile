# The two commands a newcomer needs:  make demo   and   make test
# Both create their own virtualenvs under .venv/ and install what they need.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
# Django 6.x needs Python >= 3.12: use the first one found.
PYTHON_NEW ?= $(firstword $(wildcard /root/.pyenv/versions/3.12.*/bin/python /root/.pyenv/versions/3.13.*/bin/python) $(shell command -v python3.12 python3.13 2>/dev/null))
PIP_FLAGS ?= --quiet --disable-pip-version-check
PYTEST_ARGS ?=

# name : python : Django requirement
TEST_ENVS := django52:$(PYTHON):Django~=5.2.0 django61:$(PYTHON_NEW):Django~=6.1.0

.PHONY: help demo test test-env bench lint clean

help:
	@echo "make demo   run the example project at http://127.0.0.1:8000/admin/ (admin / admin)"
	@echo "make test   run the test suite on Django 5.2 (Python 3.11) and Django 6.1 (Python 3.12+)"
	@echo "make bench  benchmarks (figures in docs/performance.md)"
	@echo "make lint   ruff"

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

test:
	@bash .ci/ensure-browser
	@test -n "$(PYTHON_NEW)" || { echo "No Python >= 3.12 found for Django 6.1; set PYTHON_NEW=/path/to/python3.12"; exit 1; }
	@set -e; for spec in $(TEST_ENVS); do \
		IFS=: read -r name python requirement <<< "$$spec"; \
		$(MAKE) --no-print-directory test-env NAME=$$name PY=$$python REQ="$$requirement"; \
	done

test-env:
	$(call venv,.venv/$(NAME),$(PY),'$(REQ)')
	@echo "=== Django $$(.venv/$(NAME)/bin/python -c 'import django; print(django.__version__)') on $$(.venv/$(NAME)/bin/python -V)"
	.venv/$(NAME)/bin/python -m pytest $(PYTEST_ARGS)

bench:
	$(call venv,.venv/demo,$(PYTHON),)
	.venv/demo/bin/python bench/run_all.py

lint:
	$(call venv,.venv/lint,$(PYTHON),ruff)
	.venv/lint/bin/ruff check nanobanana_django tests example_project bench

clean:
	rm -rf .venv .pytest_cache example_project/db.sqlite3 example_project/media
