"""Every test module carries its tier's marker, given by its folder (issue 27)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import TIER_MARKERS, pytest_collection_modifyitems


class FakeItem:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.markers: list[str] = []

    def add_marker(self, marker: pytest.MarkDecorator) -> None:
        self.markers.append(marker.name)


def test_each_folder_gives_its_tier_and_other_files_none() -> None:
    root = Path("/repo/tests")
    items = [FakeItem(root / folder / "test_x.py") for folder in TIER_MARKERS]
    loose = FakeItem(root / "test_loose.py")
    pytest_collection_modifyitems(None, [*items, loose])  # type: ignore[arg-type,list-item]
    assert [item.markers for item in items] == [[tier] for tier in TIER_MARKERS.values()]
    assert loose.markers == []


def test_the_markers_are_declared(pytestconfig: pytest.Config) -> None:
    declared = {line.split(":")[0] for line in pytestconfig.getini("markers")}
    assert set(TIER_MARKERS.values()) <= declared
