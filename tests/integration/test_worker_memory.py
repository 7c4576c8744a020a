"""Issue 25, D2 and D3: no input takes a worker's memory past its normal level + 500 MiB.

Before the fix (measured on the old code, AMD EPYC 2 cores): a 3 GiB sparse source peaked at
3,219 MiB (read whole into memory), and the face sampler's times for a scene of 1e8 s at
3,975 MiB (one list entry per second; the 1e15 s of the report is ~10^7 times that). Each case
runs in a fresh process (``tests.memory_probe``); run ``python -m tests.memory_probe`` for the
table of figures."""

from __future__ import annotations

import pytest

from tests.memory_probe import BIKES, probe

HEADROOM_MIB = 500


@pytest.fixture(scope="module")
def baseline() -> dict:
    if not BIKES.is_file():
        pytest.skip(f"sample media missing: {BIKES}")
    result = probe("baseline")
    assert result["status"] == "embedding", result  # ingested, ready to embed
    return result


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("huge_scene", "scenes[0] [0, 1e+15) s lies outside the video, which is 10.000 s long"),
        ("sparse_source", "is 3221225472 bytes, larger than the limit of 2147483648 bytes"),
        ("zero_symlink", "source: no object at"),
    ],
)
def test_hostile_inputs_fail_the_video_within_the_normal_memory(
    baseline: dict, case: str, needle: str
) -> None:
    result = probe(case)
    print(f"{case}: peak RSS {result['peak_rss_mib']} MiB (baseline {baseline['peak_rss_mib']} MiB)")
    assert result["status"] == "failed" and needle in result["error"], result
    assert result["peak_rss_mib"] < baseline["peak_rss_mib"] + HEADROOM_MIB, (result, baseline)
    if case == "huge_scene":
        assert result["sampled"] == 4  # the sampler's 3 slots + the keyframe, computed arithmetically
