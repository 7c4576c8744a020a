"""Unknown faces clustered on REAL dlib descriptors: variants of one photo make one suggested
person, another person's face stays noise.

Measured with the default ``DlibFaceEmbedder`` (unit descriptors): the astronaut variants below
are 0.02-0.21 apart, the bikes man 0.58-0.61 from each of them, against ``max_distance`` 0.4.
"""

from __future__ import annotations

import io
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from scenedex.adapters.face_clustering import DbscanFaceClusterer
from scenedex.adapters.faces import DlibFaceEmbedder
from scenedex.domain.face_clusters import ClusterSettings, UnmatchedFace, cluster_faces
from scenedex.domain.model import l2_normalise

pytestmark = pytest.mark.models

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"
OWNER, VIDEO = uuid.uuid4(), uuid.uuid4()


def media(name: str) -> Path:
    path = REAL / name
    if not path.is_file():
        pytest.skip(f"sample media {path} not present (the real media folder ../shared/data/real is absent)")
    return path


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def bikes_frame() -> Image.Image:
    """Frame 31 (index 30) of bikes.mp4: a man's face, clearly visible."""
    av = pytest.importorskip("av")
    with av.open(str(media("bikes.mp4"))) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index == 30:
                image: Image.Image = frame.to_image()
                return image
    raise AssertionError("bikes.mp4 has fewer than 31 frames")


def test_astronaut_variants_make_one_cluster_and_the_bikes_man_is_noise() -> None:
    astronaut = Image.open(media("astronaut.png")).convert("RGB")  # 512x512, face ~ (184, 85)-(273, 175)
    mirror = ImageOps.mirror(astronaut)
    variants = {
        "original": astronaut,
        "mirror": mirror,
        "crop": astronaut.crop((100, 20, 380, 300)),
        "half": astronaut.resize((256, 256), Image.Resampling.BILINEAR),
        "crop-x2": astronaut.crop((140, 40, 320, 220)).resize((400, 400), Image.Resampling.BICUBIC),
        "mirror-crop": mirror.crop((120, 0, 420, 330)),
    }
    images = {**variants, "bikes": bikes_frame()}
    embedder = DlibFaceEmbedder(threads=1)
    try:
        results = embedder.detect_faces([png(image) for image in images.values()])
    finally:
        embedder.close()
    faces = []
    for index, (name, found) in enumerate(zip(images, results, strict=True)):
        assert isinstance(found, list) and len(found) == 1, f"{name}: {found}"
        scene = uuid.uuid5(VIDEO, name)
        faces.append(
            UnmatchedFace(
                face_id=f"{scene}:0",
                owner_id=OWNER,
                scene_id=scene,
                video_id=VIDEO,
                first_s=float(index),
                last_s=float(index),
                bbox=found[0].bbox,
                descriptor=l2_normalise(found[0].descriptor),
            )
        )
    by_name = dict(zip(images, faces, strict=True))

    (cluster,) = cluster_faces(faces, DbscanFaceClusterer(), ClusterSettings())
    assert set(cluster.face_ids) == {by_name[name].face_id for name in variants}
    assert by_name["bikes"].face_id not in cluster.face_ids
    assert cluster.representative in cluster.face_ids
    bikes_distance = float(np.linalg.norm(by_name["bikes"].descriptor - cluster.centroid))
    assert bikes_distance > 0.5  # far beyond the 0.4 of the settings, not a near miss
