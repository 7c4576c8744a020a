"""The OCR scenarios of tests/unit/test_runner_ocr.py, run again over SQLite and Postgres: the
dry run after switching OCR on over an existing library shows only ``scene_ocr``, the ``ocr``
channel and ``search_reindex`` stale, and the run after the run computes nothing."""

from __future__ import annotations

import pytest

from tests.conftest import World, make_world
from tests.unit.test_runner_ocr import *  # noqa: F403  (the scenarios, collected here too)


@pytest.fixture(
    params=[
        pytest.param("sqlite", marks=pytest.mark.integration),
        pytest.param("postgres", marks=pytest.mark.integration),
    ]
)
def world(request: pytest.FixtureRequest) -> World:
    """The ports over a migrated, empty SQLite or Postgres database (fake models and blobs)."""
    return make_world(request, request.param)
