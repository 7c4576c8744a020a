# Common commands. `make install` once, then `make sample` and `make test`.
PYTHON ?= .venv/bin/python
MEDIA ?= ../shared/data/real
SAMPLE_DIR ?= scenedex-sample
SAMPLE_OWNER ?= 00000000-0000-4000-8000-000000000001

.PHONY: install test test-unit lint sample clean-sample

install:
	python3 -m venv .venv && .venv/bin/pip install -q --upgrade pip && .venv/bin/pip install -e '.[dev]'

test:
	$(PYTHON) -m pytest -q

test-unit:
	$(PYTHON) -m pytest -q tests/unit

lint:
	$(PYTHON) -m ruff check src tests && $(PYTHON) -m ruff format --check src tests && $(PYTHON) -m mypy

# The main job on the sample media: ingest two real videos and a person, then reprocess the owner.
# No pretrained CLIP weights can be downloaded here, so the sample says so and uses untrained ones.
sample:
	@./scripts/sample.sh "$(MEDIA)" "$(SAMPLE_DIR)" "$(SAMPLE_OWNER)"

clean-sample:
	rm -rf $(SAMPLE_DIR)
