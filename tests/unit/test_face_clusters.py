"""Unknown faces clustered into suggested persons (domain/face_clusters.py) with the DBSCAN
adapter (adapters/face_clustering.py), on synthetic unit descriptors.

Identities are random unit vectors (any two ~1.41 apart in 128 dimensions); a face of one is
its identity plus Gaussian noise of 0.01 per dimension, normalised: ~0.11 from the identity,
~0.16 from another face of it, well within the 0.4 of the default settings.
"""

from __future__ import annotations

import random
import uuid

import numpy as np
import pytest

from scenedex.adapters.face_clustering import DbscanFaceClusterer
from scenedex.domain.face_clusters import (
    ClusterSettings,
    FaceCluster,
    UnmatchedFace,
    assign_incrementally,
    cluster_faces,
    cluster_id_of,
    unmatched_faces,
)
from scenedex.domain.model import EmbeddingRecord, l2_normalise

OWNER = uuid.UUID("00000000-0000-0000-0000-00000000000a")
VIDEO = uuid.UUID("00000000-0000-0000-0000-0000000000b0")
RNG = np.random.default_rng(19)
ALICE, BOB, CAROL = (l2_normalise(RNG.normal(size=128)) for _ in range(3))
SETTINGS = ClusterSettings()
DBSCAN = DbscanFaceClusterer()


def descriptor(identity: np.ndarray | None, noise: float = 0.01) -> np.ndarray:
    """A unit ``(128,)`` float32 face of ``identity`` (None: a face like no other)."""
    centre = l2_normalise(RNG.normal(size=128)) if identity is None else identity
    return l2_normalise(centre + RNG.normal(scale=noise, size=128)).astype(np.float32)


def unmatched(scene: int, track: int, identity: np.ndarray | None, owner: uuid.UUID = OWNER) -> UnmatchedFace:
    scene_id = uuid.UUID(int=scene)
    return UnmatchedFace(
        face_id=f"{scene_id}:{track}",
        owner_id=owner,
        scene_id=scene_id,
        video_id=VIDEO,
        first_s=float(scene),
        last_s=float(scene) + 1.0,
        bbox=(10, 10, 70, 70),
        descriptor=descriptor(identity),
    )


def population() -> tuple[list[UnmatchedFace], set[str], set[str], set[str]]:
    """6 faces of Alice (3 scenes), 4 of Bob, 2 of Carol (too few) and 3 singletons."""
    alice = [unmatched(100 + i // 2, i % 2, ALICE) for i in range(6)]
    bob = [unmatched(200 + i, 0, BOB) for i in range(4)]
    carol = [unmatched(300 + i, 0, CAROL) for i in range(2)]
    singletons = [unmatched(400 + i, 0, None) for i in range(3)]
    faces = alice + bob + carol + singletons
    return (
        faces,
        {f.face_id for f in alice},
        {f.face_id for f in bob},
        {f.face_id for f in carol + singletons},
    )


def summary(clusters: list[FaceCluster]) -> list[tuple[str, tuple[str, ...], str]]:
    return [(c.cluster_id, c.face_ids, c.representative) for c in clusters]


def test_one_cluster_per_identity_with_exactly_its_faces_largest_first() -> None:
    faces, alice, bob, noise = population()
    clusters = cluster_faces(faces, DBSCAN, SETTINGS)
    assert [set(c.face_ids) for c in clusters] == [alice, bob]
    assert [c.size for c in clusters] == [6, 4]
    assert not noise & {face_id for c in clusters for face_id in c.face_ids}
    first = clusters[0]
    assert first.owner_id == OWNER
    assert first.scene_ids == tuple(uuid.UUID(int=n) for n in (100, 101, 102))
    assert first.face_ids == tuple(sorted(alice))
    assert first.cluster_id == cluster_id_of(alice) and first.cluster_id.startswith("fc-")
    assert first.centroid.shape == (128,) and first.centroid.dtype == np.float32
    assert float(np.linalg.norm(first.centroid)) == pytest.approx(1.0, abs=1e-5)
    assert float(np.linalg.norm(first.centroid - ALICE)) < 0.1


def test_representative_is_the_member_nearest_the_normalised_mean() -> None:
    faces, _, _, _ = population()
    by_id = {face.face_id: face for face in faces}
    for cluster in cluster_faces(faces, DBSCAN, SETTINGS):
        assert cluster.representative in cluster.face_ids
        distances = {
            i: float(np.linalg.norm(by_id[i].descriptor - cluster.centroid)) for i in cluster.face_ids
        }
        assert distances[cluster.representative] == min(distances.values())


def test_cluster_ids_are_stable_across_runs_and_input_orders() -> None:
    faces, _, _, _ = population()
    reference = summary(cluster_faces(faces, DBSCAN, SETTINGS))
    assert summary(cluster_faces(faces, DBSCAN, SETTINGS)) == reference
    shuffler = random.Random(3)
    for _ in range(3):
        shuffled = faces[:]
        shuffler.shuffle(shuffled)
        assert summary(cluster_faces(shuffled, DBSCAN, SETTINGS)) == reference
    # The id rests on the smallest member: it survives the cluster losing another face.
    alice = cluster_faces(faces, DBSCAN, SETTINGS)[0]
    fewer = [face for face in faces if face.face_id != alice.face_ids[-1]]
    assert cluster_faces(fewer, DBSCAN, SETTINGS)[0].cluster_id == alice.cluster_id


def test_min_faces_and_max_distance_decide_what_is_a_cluster() -> None:
    faces, _, _, _ = population()
    two = cluster_faces(faces, DBSCAN, ClusterSettings(min_faces=2))
    assert [c.size for c in two] == [6, 4, 2]  # Carol's two faces now count
    assert cluster_faces(faces, DBSCAN, ClusterSettings(min_faces=7)) == []
    assert cluster_faces(faces, DBSCAN, ClusterSettings(max_distance=0.05)) == []  # faces ~0.16 apart
    assert cluster_faces([], DBSCAN, SETTINGS) == []


class FixedLabels:
    def __init__(self, labels: list[int]) -> None:
        self.labels = np.asarray(labels)

    def cluster(self, descriptors: np.ndarray, settings: ClusterSettings) -> np.ndarray:
        assert descriptors.shape[1:] == (128,) and descriptors.dtype == np.float32
        return self.labels


def test_labels_under_min_faces_are_noise_and_bad_labels_are_refused() -> None:
    faces = [unmatched(1, i, ALICE) for i in range(5)]
    (cluster,) = cluster_faces(faces, FixedLabels([0, 0, 0, 1, 1]), SETTINGS)
    assert cluster.face_ids == tuple(f.face_id for f in faces[:3])
    with pytest.raises(ValueError, match="labels"):
        cluster_faces(faces, FixedLabels([0, 0, 0]), SETTINGS)
    with pytest.raises(ValueError, match="owners"):
        cluster_faces([*faces, unmatched(2, 0, ALICE, owner=uuid.uuid4())], DBSCAN, SETTINGS)
    with pytest.raises(ValueError, match="unique"):
        cluster_faces([faces[0], faces[0]], DBSCAN, SETTINGS)


def test_settings_id_and_checks() -> None:
    assert SETTINGS.id == "dbscan-eps0.4-min3"
    assert ClusterSettings(max_distance=0.35, min_faces=5).id == "dbscan-eps0.35-min5"
    with pytest.raises(ValueError, match="max_distance"):
        ClusterSettings(max_distance=0)
    with pytest.raises(ValueError, match="min_faces"):
        ClusterSettings(min_faces=0)
    with pytest.raises(ValueError, match="dbscan"):
        DBSCAN.cluster(np.zeros((1, 128), np.float32), ClusterSettings(algorithm="hdbscan"))


def test_new_faces_join_the_nearest_cluster_or_wait() -> None:
    faces, _, _, _ = population()
    alice, bob = cluster_faces(faces, DBSCAN, SETTINGS)
    new_alice, new_bob, stranger = unmatched(500, 0, ALICE), unmatched(501, 0, BOB), unmatched(502, 0, None)
    result = assign_incrementally([alice, bob], [stranger, new_bob, faces[0], new_alice], SETTINGS)
    assert result.joined == {alice.cluster_id: (new_alice,), bob.cluster_id: (new_bob,)}
    assert result.waiting == (stranger,)  # faces[0] is already Alice's: left out
    # Carol's third face waits: her two faces were no cluster.
    carol = unmatched(503, 0, CAROL)
    assert assign_incrementally([alice, bob], [carol], SETTINGS).waiting == (carol,)
    # Too strict a distance: everything waits.
    strict = assign_incrementally([alice, bob], [new_alice], ClusterSettings(max_distance=0.01))
    assert strict.joined == {} and strict.waiting == (new_alice,)
    assert assign_incrementally([], [new_alice], SETTINGS).waiting == (new_alice,)
    with pytest.raises(ValueError, match="owners"):
        assign_incrementally([alice], [unmatched(504, 0, ALICE, owner=uuid.uuid4())], SETTINGS)


def record(scene: uuid.UUID, entries: list[str | None], vectors: np.ndarray | None) -> EmbeddingRecord:
    faces = [
        {"bbox": [i, 0, i + 50, 50], "person_id": p, "distance": 0.3, "first_s": 1.0 + i, "last_s": 2.0 + i}
        for i, p in enumerate(entries)
    ]
    return EmbeddingRecord(OWNER, scene, "", vectors, "dlib", "v", "fp", "ih", {"faces": faces})


def test_unmatched_faces_skip_matched_tracks_records_without_vectors_and_unknown_scenes() -> None:
    person = str(uuid.uuid4())
    first, second, empty, gone = (uuid.UUID(int=n) for n in (1, 2, 3, 4))
    raw = np.stack([descriptor(ALICE) * 1.45, descriptor(BOB), descriptor(CAROL)])  # a raw (older) row
    records = [
        record(first, [None, person, None], raw),
        record(second, [person], np.stack([descriptor(BOB)])),
        record(empty, [], None),
        record(gone, [None], np.stack([descriptor(ALICE)])),
    ]
    found = unmatched_faces(records, {first: VIDEO, second: VIDEO, empty: VIDEO})
    assert [f.face_id for f in found] == [f"{first}:0", f"{first}:2"]
    alice, carol = found
    assert (alice.owner_id, alice.scene_id, alice.video_id) == (OWNER, first, VIDEO)
    assert (alice.first_s, alice.last_s, alice.bbox) == (1.0, 2.0, (0, 0, 50, 50))
    assert (carol.first_s, carol.bbox) == (3.0, (2, 0, 52, 50))
    assert alice.descriptor.shape == (128,) and alice.descriptor.dtype == np.float32
    assert float(np.linalg.norm(alice.descriptor)) == pytest.approx(1.0, abs=1e-5)  # normalised again
    np.testing.assert_allclose(carol.descriptor, raw[2], atol=1e-6)
