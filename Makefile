# Common commands. `make install` once, then `make demo` and `make test`.
PYTHON ?= .venv/bin/python
MEDIA ?= ../shared/data/real
DEMO_DIR ?= scenedex-demo

.PHONY: install test test-unit lint demo

# The pinned dependencies (requirements-dev.lock = requirements.lock, which the Docker images
# install, + dev tools), then the project itself, editable.
install:
	python3 -m venv .venv && .venv/bin/pip install -q --upgrade pip && .venv/bin/pip install -r requirements-dev.lock && .venv/bin/pip install --no-deps -e .

# Three pytest-xdist workers on the 2-core machines (a third fills the waits of the other two:
# tests/xdist_schedule.py), a test module per unit of work, the slowest first; each module has its
# own Postgres database and each worker its own Redis database (tests/conftest.py).
test:
	$(PYTHON) -m pytest -q -n 3 --dist loadfile --durations=25

# The fast tier: no process started, no model library imported (tests/unit/conftest.py checks).
test-unit:
	$(PYTHON) -m pytest -q tests/unit

lint:
	$(PYTHON) -m ruff check src tests && $(PYTHON) -m ruff format --check src tests && $(PYTHON) -m mypy

# The main job on the sample media, offline: ingest, person, reprocess twice, searches, report.
demo:
	.venv/bin/scenedex demo --dir $(DEMO_DIR) --media $(MEDIA)
