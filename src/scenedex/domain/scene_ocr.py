"""On-screen text: the ``scene_ocr`` step and how its lines are normalised.

The step reads the keyframe of each scene through the ``OcrReader`` port (text lines with boxes
and confidences), normalises the lines (``normalise_lines``: confidence cut-off, whitespace,
dedup, reading order) and stores one record per scene without a vector: ``payload["lines"]``
(``[{"text", "box": [x0, y0, x1, y1], "confidence"}]``, keyframe pixels) and ``payload["text"]``
(the lines joined by newlines), which the ``ocr`` text channel embeds and the search documents
hold. The package and its measurement: docs/OCR.md.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from scenedex.domain.model import EmbeddingRecord, Scene
from scenedex.domain.ports import OcrLine, OcrReader
from scenedex.domain.scene_steps import KeyframeStep, SceneBatch
from scenedex.domain.spec import OCR_RECORD, EmbeddingStepType

Step = EmbeddingStepType

__all__ = ["OCR_RECORD", "OcrLine", "SceneOcrStep", "normalise_lines", "ocr_text"]


@dataclass(frozen=True)
class _Row:
    top: float
    lines: list[OcrLine]


def normalise_lines(lines: Iterable[OcrLine], min_confidence: float) -> tuple[OcrLine, ...]:
    """The lines a record keeps: whitespace collapsed, empty lines and lines under
    ``min_confidence`` dropped, a text repeated (case folded) kept once at its best confidence,
    then in reading order: rows top to bottom (a line joins a row when its vertical centre is
    within half the median line height of the row's first line), each row left to right."""
    best: dict[str, OcrLine] = {}
    for line in lines:
        text = " ".join(line.text.split())
        if not text or line.confidence < min_confidence:
            continue
        key = text.casefold()
        if key not in best or line.confidence > best[key].confidence:
            best[key] = OcrLine(text, line.box, line.confidence)
    kept = sorted(best.values(), key=lambda ln: ((ln.box[1] + ln.box[3]) / 2, ln.box[0]))
    if not kept:
        return ()
    tolerance = statistics.median(ln.box[3] - ln.box[1] for ln in kept) / 2
    rows: list[_Row] = []
    for line in kept:
        centre = (line.box[1] + line.box[3]) / 2
        if rows and centre - rows[-1].top <= tolerance:
            rows[-1].lines.append(line)
        else:
            rows.append(_Row(centre, [line]))
    return tuple(line for row in rows for line in sorted(row.lines, key=lambda ln: ln.box[0]))


def ocr_text(record: EmbeddingRecord | None) -> str:
    """The on-screen text of an OCR record (``payload["text"]``); ``""`` for no record."""
    return str(record.payload.get("text", "")) if record is not None else ""


def _payload(lines: tuple[OcrLine, ...]) -> Mapping[str, Any]:
    return {
        "lines": [
            {"text": ln.text, "box": list(ln.box), "confidence": round(ln.confidence, 4)} for ln in lines
        ],
        "text": "\n".join(ln.text for ln in lines),
    }


class SceneOcrStep(KeyframeStep):
    """SCENE_OCR: the keyframe's text lines, normalised, one record per scene (no vector)."""

    step = Step.SCENE_OCR

    def __init__(self, reader: OcrReader, min_confidence: float) -> None:
        self._reader = reader
        self._min_confidence = min_confidence

    def embed(self, images: list[bytes]) -> list[Any]:
        return list(self._reader.read_lines(images))

    def record(self, batch: SceneBatch, scene: Scene, outcome: Any) -> EmbeddingRecord:
        lines = normalise_lines(outcome, self._min_confidence)
        state = batch.expected.ocr(scene)
        return batch.record(
            step=self.step,
            scene=scene,
            key="",
            vector=None,
            input_hash=state.input_hash,
            payload=_payload(lines),
        )
