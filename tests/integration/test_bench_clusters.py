"""The clustering benchmark at a tiny size: it reports every figure and really clusters (the
synthetic identities come back), so it cannot silently measure nothing. Not in the unit tier:
its machine section runs ``lscpu`` (tests/unit/test_bench_clusters.py checks the generator)."""

from __future__ import annotations

import json

import pytest

from scenedex.tools import bench_clusters


def test_synthetic_part_reports_every_figure_and_finds_the_identities(
    capsys: pytest.CaptureFixture[str],
) -> None:
    bench_clusters.main(["--faces", "300", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {"machine", "generator", "distances", "rss_method", "sizes", "postgres"}
    figures = report["sizes"]["300"]
    assert set(figures) == {"faces", "identities", "full", "incremental", "quality", "variants"}
    assert {"seconds", "peak_mib", "clusters"} <= set(figures["full"])
    assert {"seconds", "peak_mib", "new_faces", "joined"} <= set(figures["incremental"])
    assert figures["quality"]["ari"] > 0.9
    assert figures["quality"]["clusters"] == figures["identities"] == 3
    assert figures["incremental"]["new_faces"] == 3
    assert all(v["ari"] > 0.9 for v in figures["variants"].values())
    assert report["postgres"] is None
