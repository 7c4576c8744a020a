"""The labelled face check: frames with faces of known boxes, built from the real sample media,
and the recall and false positives of a face detector on them.

Frames (``build_face_check``), JPEG quality 85:

- **faces**: astronaut.png's face (``ASTRONAUT_FACE``, with a margin of hair and suit) pasted
  into real photos (coffee, rocket, motorcycle, Hubble deep field, a Big Buck Bunny frame) at
  known boxes: 1280x720 frames with faces 60-300 px tall, 640x360 frames with faces 40-150 px
  tall, and 176x144 (QCIF) frames with faces 36-64 px tall. The smaller frames are composed at
  4x and downscaled (antialiased), not pasted small; the QCIF frames then pass through
  low-bitrate H.264 (``LOW_BITRATE``). Every other face frame has the face mirrored.
- **real faces**: bikes.mp4 frames 31, 34 and 36 (a cyclist's face, 64 px in 640x272, boxes
  labelled by hand from a look at the frames); frame 127's helmeted cyclist (26 px) is an
  *ignore* region (neither found nor missed counts).
- **no faces**: the same photos and chelsea.png (a cat) at all three sizes, and bikes.mp4 frames
  100, 185 (a car wheel that dlib's HOG scores 0.5 at upsample 2) and 220.

A detection *finds* a labelled face when its centre lies inside the face's box and its side is
0.5-2x the box's side (detectors frame a face differently); each face is found at most once. A
detection that finds no face and lies in no ignore region is a *false positive*.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from scenedex.domain.errors import BadInputError
from scenedex.domain.model import DetectedFace

Box = tuple[int, int, int, int]
"""``(left, top, right, bottom)`` pixels, right/bottom exclusive."""

ASTRONAUT_FACE: Box = (179, 83, 267, 171)
"""The face in astronaut.png (512x512): dlib's HOG box at upsample 0 (score 1.53), checked by eye."""
BIKES_FACES: dict[int, Box] = {31: (276, 19, 341, 84), 34: (326, 19, 392, 84), 36: (369, 19, 435, 84)}
BIKES_IGNORE: dict[int, Box] = {127: (410, 10, 452, 52)}
BIKES_FACE_FREE = (100, 185, 220)
BACKGROUNDS = ("coffee.png", "rocket.jpg", "motorcycle_left.png", "hubble_deep_field.jpg", "bigbuckbunny.mp4")
FACE_FREE = (*BACKGROUNDS, "chelsea.png")
FACE_HEIGHTS: dict[tuple[int, int], tuple[int, ...]] = {
    (1280, 720): (60, 90, 130, 200, 300),
    (640, 360): (40, 60, 90, 150),
    (176, 144): (36, 44, 52, 64),
}
"""Pasted face heights (pixels of the final frame) per frame size."""
COMPOSE_SCALE = {(1280, 720): 1, (640, 360): 2, (176, 144): 4}
"""Frames are composed at this multiple of their size and downscaled."""
JPEG_QUALITY = 85
LOW_BITRATE = {(176, 144): 36}
"""Frame sizes whose frames pass through H.264 (libx264, this CRF, yuv420p) before they are
stored, as low-resolution footage reaches a video library: at CRF 36 the blocking and the
halved chroma cost HOG up to 0.8 of score on a 44-px face (measured)."""
SEED = 20261130


@dataclass(frozen=True)
class LabelledFrame:
    """One frame of the check: ``data`` (JPEG bytes) of ``size`` (width, height), the ``faces``
    a detector must find and the ``ignore`` regions where a detection counts neither way."""

    name: str
    data: bytes
    size: tuple[int, int]
    faces: tuple[Box, ...] = ()
    ignore: tuple[Box, ...] = ()


@dataclass
class CheckResult:
    """How one detector did on the check. ``ms_per_image``: wall milliseconds per frame, one
    image at a time (decode, detection, landmarks and descriptors)."""

    name: str
    faces: int = 0
    found: int = 0
    false_positives: int = 0
    images: int = 0
    seconds: float = 0.0
    missed: list[str] = field(default_factory=list)
    false_positive_frames: list[str] = field(default_factory=list)
    found_by_frame: dict[str, int] = field(default_factory=dict)

    @property
    def recall(self) -> float:
        return self.found / self.faces if self.faces else 1.0

    @property
    def ms_per_image(self) -> float:
        return 1000 * self.seconds / self.images if self.images else 0.0

    def found_keys(self) -> set[str]:
        """``"frame#i"`` for every labelled face found (to compare two detectors face by face)."""
        return {f"{name}#{i}" for name, count in self.found_by_frame.items() for i in range(count)}

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "recall": round(self.recall, 4),
            "found": self.found,
            "faces": self.faces,
            "false_positives": self.false_positives,
            "ms_per_image": round(self.ms_per_image, 1),
            "missed": self.missed,
            "false_positive_frames": self.false_positive_frames,
        }


def _h264(image: Image.Image, crf: int) -> Image.Image:
    """``image`` as it comes out of a short H.264 stream at ``crf`` (its last frame)."""
    import av

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = image.width, image.height, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast"}
        for _ in range(3):
            container.mux(stream.encode(av.VideoFrame.from_image(image)))
        container.mux(stream.encode())
    buffer.seek(0)
    with av.open(buffer, "r") as container:
        frames: list[Image.Image] = [frame.to_image() for frame in container.decode(video=0)]
        return frames[-1]


def _jpeg(image: Image.Image) -> bytes:
    if image.size in LOW_BITRATE:
        image = _h264(image.convert("RGB"), LOW_BITRATE[image.size])
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def _video_frames(path: Path, indices: Sequence[int]) -> dict[int, Image.Image]:
    import av

    wanted, frames = set(indices), {}
    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index in wanted:
                frames[index] = frame.to_image().convert("RGB")
            if index >= max(wanted):
                break
    return frames


def _background(media: Path, name: str, size: tuple[int, int]) -> Image.Image:
    if name.endswith(".mp4"):
        source = _video_frames(media / name, [60])[60]
    else:
        source = Image.open(media / name).convert("RGB")
    return ImageOps.fit(source, size, Image.Resampling.LANCZOS)


def _face_crop(media: Path, mirrored: bool) -> tuple[Image.Image, Box]:
    """astronaut.png's face with a margin (60 % of the face's side on each side, clipped), and
    the face's box inside the crop."""
    photo = Image.open(media / "astronaut.png").convert("RGB")
    left, top, right, bottom = ASTRONAUT_FACE
    margin = round(0.6 * (right - left))
    crop_box = (
        max(0, left - margin),
        max(0, top - margin),
        min(photo.width, right + margin),
        min(photo.height, bottom + margin),
    )
    crop = photo.crop(crop_box)
    face = (left - crop_box[0], top - crop_box[1], right - crop_box[0], bottom - crop_box[1])
    if mirrored:
        crop = ImageOps.mirror(crop)
        face = (crop.width - face[2], face[1], crop.width - face[0], face[3])
    return crop, face


def _face_frame(
    media: Path, background: str, size: tuple[int, int], height: int, mirrored: bool, rng: np.random.Generator
) -> LabelledFrame:
    scale = COMPOSE_SCALE[size]
    canvas = _background(media, background, (size[0] * scale, size[1] * scale))
    crop, face = _face_crop(media, mirrored)
    factor = height * scale / (face[3] - face[1])
    pasted = crop.resize((round(crop.width * factor), round(crop.height * factor)), Image.Resampling.LANCZOS)
    x = int(rng.integers(0, max(1, canvas.width - pasted.width)))
    y = int(rng.integers(0, max(1, canvas.height - pasted.height)))
    canvas.paste(pasted, (x, y))
    box = tuple(round((v * factor + offset) / scale) for v, offset in zip(face, (x, y, x, y), strict=True))
    frame = canvas.resize(size, Image.Resampling.LANCZOS) if scale > 1 else canvas
    flip = "-mirrored" if mirrored else ""
    name = f"{size[0]}x{size[1]}-{background.split('.')[0]}-face{height}{flip}"
    return LabelledFrame(name, _jpeg(frame), size, faces=(box,))  # type: ignore[arg-type]


def build_face_check(media: Path) -> list[LabelledFrame]:
    """The labelled frames (see the module docstring) from the real sample media in ``media``
    (``../shared/data/real``). Deterministic (seeded positions). Raises ``FileNotFoundError``
    when a file is missing."""
    rng = np.random.default_rng(SEED)
    frames: list[LabelledFrame] = []
    count = 0
    for size, heights in FACE_HEIGHTS.items():
        for height in heights:
            background = BACKGROUNDS[count % len(BACKGROUNDS)]
            frames.append(_face_frame(media, background, size, height, count % 2 == 1, rng))
            count += 1
    for size in FACE_HEIGHTS:
        for name in FACE_FREE:
            frames.append(
                LabelledFrame(
                    f"{size[0]}x{size[1]}-{name.split('.')[0]}", _jpeg(_background(media, name, size)), size
                )
            )
    bikes = _video_frames(media / "bikes.mp4", [*BIKES_FACES, *BIKES_IGNORE, *BIKES_FACE_FREE])
    for index, image in sorted(bikes.items()):
        faces = (BIKES_FACES[index],) if index in BIKES_FACES else ()
        ignore = (BIKES_IGNORE[index],) if index in BIKES_IGNORE else ()
        frames.append(LabelledFrame(f"bikes-{index}", _jpeg(image), image.size, faces, ignore))
    return frames


def _finds(detection: Box, truth: Box) -> bool:
    cx, cy = (detection[0] + detection[2]) / 2, (detection[1] + detection[3]) / 2
    inside = truth[0] <= cx <= truth[2] and truth[1] <= cy <= truth[3]
    side = ((detection[2] - detection[0]) * (detection[3] - detection[1])) ** 0.5
    truth_side = ((truth[2] - truth[0]) * (truth[3] - truth[1])) ** 0.5
    return inside and 0.5 <= side / max(truth_side, 1) <= 2.0


def evaluate(
    name: str,
    detect: Callable[[Sequence[bytes]], Sequence[list[DetectedFace] | BadInputError]],
    frames: Sequence[LabelledFrame],
) -> CheckResult:
    """Recall and false positives of ``detect`` (a ``FaceEmbedder.detect_faces``) on ``frames``,
    one frame per call (so ``seconds`` is per-image latency). Raises the ``BadInputError`` of a
    frame the detector cannot read (the check's frames are all readable)."""
    result = CheckResult(name)
    for frame in frames:
        started = time.perf_counter()
        (outcome,) = detect([frame.data])
        result.seconds += time.perf_counter() - started
        result.images += 1
        if isinstance(outcome, BadInputError):
            raise outcome
        unmatched = list(frame.faces)
        for face in outcome:
            hit = next((t for t in unmatched if _finds(face.bbox, t)), None)
            if hit is not None:
                unmatched.remove(hit)
                result.found_by_frame[frame.name] = result.found_by_frame.get(frame.name, 0) + 1
            elif not any(_finds(face.bbox, region) for region in frame.ignore):
                result.false_positives += 1
                result.false_positive_frames.append(frame.name)
        result.faces += len(frame.faces)
        result.found += len(frame.faces) - len(unmatched)
        result.missed.extend(frame.name for _ in unmatched)
    return result


CANDIDATES: dict[str, dict[str, Any]] = {
    "HOG, image as it is, upsample 1 (previous default)": {
        "detect_side": None,
        "upsample": 1,
        "min_score": 0.3,
    },
    "HOG, image as it is, upsample 0": {"detect_side": None, "upsample": 0, "min_score": 0.3},
    "HOG, shorter side 360, upsample 1": {"detect_side": 360, "upsample": 1, "min_score": 0.3},
    "HOG, shorter side 480, upsample 0": {"detect_side": 480, "upsample": 0, "min_score": 0.3},
    "HOG, shorter side 600, upsample 0": {"detect_side": 600, "upsample": 0, "min_score": 0.3},
    "HOG, shorter side 720, upsample 0": {"detect_side": 720, "upsample": 0, "min_score": 0.3},
    "HOG, shorter side 720, upsample 0, min score 0.25 (default)": {"detect_side": 720, "upsample": 0},
    "HOG, shorter side 720, upsample 1": {"detect_side": 720, "upsample": 1, "min_score": 0.3},
}
"""The dlib candidates of docs/FACE_DETECTION.md (keyword arguments of ``DlibFaceEmbedder``)."""
CNN_CANDIDATES: dict[str, dict[str, Any]] = {
    "CNN (MMOD), shorter side 360, upsample 0": {"detector": "cnn", "detect_side": 360, "min_score": 0.0},
    "CNN (MMOD), shorter side 720, upsample 0": {"detector": "cnn", "detect_side": 720, "min_score": 0.0},
}
"""dlib's CNN detector: seconds per image on a CPU, so only with ``--cnn``."""


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m scenedex.tools.face_check [--media DIR] [--cnn]``: every candidate on the
    check, one image at a time, as a Markdown table (recall, false positives, ms per image)."""
    import argparse

    from scenedex.adapters.faces import DlibFaceEmbedder

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--media", type=Path, default=Path("../shared/data/real"))
    parser.add_argument("--cnn", action="store_true", help="also dlib's CNN detector (slow on a CPU)")
    args = parser.parse_args(argv)
    frames = build_face_check(args.media)
    faces = sum(len(frame.faces) for frame in frames)
    print(f"{len(frames)} frames, {faces} labelled faces\n")
    print("| candidate | found | recall | false positives | ms per image | missed |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    candidates = {**CANDIDATES, **(CNN_CANDIDATES if args.cnn else {})}
    for name, kwargs in candidates.items():
        result = evaluate(name, DlibFaceEmbedder(threads=1, **kwargs).detect_faces, frames)
        missed = ", ".join(result.missed) or "-"
        print(
            f"| {name} | {result.found}/{result.faces} | {result.recall:.2f} | {result.false_positives} "
            f"| {result.ms_per_image:.0f} | {missed} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
