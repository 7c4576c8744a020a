"""``SCENEDEX_CI=1`` turns a skip into a failure with its reason (issue 27), except the allowed
real-cluster OpenSearch reason; without it a skip stays a skip. The inner run is in this process
(``runpytest_inprocess``: the unit tier starts no process)."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]


@pytest.mark.parametrize(("ci", "expected"), [("1", {"failed": 1, "skipped": 1}), ("0", {"skipped": 2})])
def test_ci_turns_skips_into_failures(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str, expected: dict[str, int]
) -> None:
    monkeypatch.setenv("SCENEDEX_CI", ci)
    pytester.makeconftest("from tests.conftest import pytest_runtest_makereport  # noqa: F401\n")
    pytester.makepyfile(
        """
        import pytest

        def test_media_missing():
            pytest.skip("real sample media not found")

        def test_no_cluster():
            pytest.skip("OPENSEARCH_URL is not set: kNN needs a real cluster")
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(**expected)
    if ci == "1":
        result.stdout.fnmatch_lines(["*skipped under SCENEDEX_CI=1*real sample media not found*"])
