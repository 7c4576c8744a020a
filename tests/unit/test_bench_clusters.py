"""The clustering benchmark's synthetic faces: one identity's faces are closer than two identities'
(the whole benchmark at a tiny size: tests/integration/test_bench_clusters.py)."""

from __future__ import annotations

from scenedex.tools import bench_cluster_faces, bench_clusters


def test_generator_puts_faces_of_one_identity_closer_than_faces_of_two() -> None:
    faces = bench_cluster_faces.synthetic_faces(bench_cluster_faces.Generator(1000, 10))
    profile = bench_clusters.distance_profile(faces)
    same_p99 = profile["same_identity_p1_p50_p99"][2]
    other_p001 = profile["other_identity_p0.01_p1_p50"][0]
    assert profile["same_identity_p1_p50_p99"][0] > 0.15 and same_p99 < 0.4 < other_p001
