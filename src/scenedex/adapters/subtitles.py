"""Subtitle cues (SubRip ``.srt`` and WebVTT ``.vtt``) read with ``pysubs2``.

Times are in seconds (float) from the start of the video.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pysubs2
from pysubs2.exceptions import Pysubs2Error

from scenedex.domain.errors import BadInputError

SUPPORTED_EXTENSIONS = (".srt", ".vtt")

_WHITESPACE = re.compile(r"\s+")
_BLANK_LINE = re.compile(r"\n[ \t]*\n")
_TAG = re.compile(r"<[^<>]*>")


@dataclass(frozen=True)
class Cue:
    """One subtitle cue shown over ``[start_s, end_s)`` seconds.

    ``text`` is plain text: markup and tags removed, line breaks turned into single spaces.
    """

    start_s: float
    end_s: float
    text: str


def load_cues(path: str | Path) -> list[Cue]:
    """Read the cues of an ``.srt`` or ``.vtt`` file (UTF-8, with or without BOM).

    Cues come back sorted by start time (file order kept for equal starts); cues whose text is
    empty once markup is stripped are dropped. Times are in seconds.

    Raises:
        BadInputError: unsupported extension, missing file, not UTF-8, or content that is not
            SubRip/WebVTT.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_EXTENSIONS:
        raise BadInputError(
            f"unsupported subtitle file {path}: expected one of {', '.join(SUPPORTED_EXTENSIONS)}"
        )
    if not path.is_file():
        raise BadInputError(f"subtitle file not found: {path}")
    try:
        # Format detected from content (SRT and WebVTT are accepted whatever the extension says).
        subs = pysubs2.load(str(path), encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadInputError(f"cannot read subtitle file {path}: not UTF-8 text") from exc
    except (Pysubs2Error, ValueError, OSError) as exc:
        raise BadInputError(f"cannot parse subtitle file {path}: not SubRip or WebVTT") from exc
    if subs.format not in ("srt", "vtt"):
        raise BadInputError(
            f"cannot parse subtitle file {path}: content is {subs.format!r}, not SubRip or WebVTT"
        )

    is_vtt = subs.format == "vtt"
    cues: list[Cue] = []
    for event in subs:
        if event.is_comment:
            continue
        text = _plain_text(event.plaintext, is_vtt=is_vtt)
        if text:
            cues.append(Cue(start_s=event.start / 1000.0, end_s=event.end / 1000.0, text=text))
    cues.sort(key=lambda cue: cue.start_s)
    return cues


def _plain_text(text: str, *, is_vtt: bool) -> str:
    """One-line plain text of a cue (pysubs2 already removed the tags it knows)."""
    if is_vtt:
        # pysubs2 reads WebVTT with its SubRip parser, which appends whatever follows a cue up to
        # the next timing line (a non-numeric cue id, a NOTE block) to the cue's text. In WebVTT a
        # cue's text ends at the first blank line, so cut there.
        text = _BLANK_LINE.split(text, maxsplit=1)[0]
        # WebVTT escapes "<", ">" and "&", so any "<...>" left (e.g. <00:00:01.500>) is markup.
        text = html.unescape(_TAG.sub("", text))
    return _WHITESPACE.sub(" ", text).strip()


def transcript_for(start_s: float, end_s: float, cues: Sequence[Cue]) -> str:
    """Text spoken during the half-open interval ``[start_s, end_s)`` (seconds).

    A cue belongs when it overlaps the interval: ``cue.start_s < end_s and cue.end_s > start_s``
    (so a cue ending exactly at ``start_s`` or starting exactly at ``end_s`` does not). The
    texts are joined by single spaces in time order; an empty interval gives ``""``.
    """
    if end_s <= start_s:
        return ""
    hits = [cue for cue in cues if cue.start_s < end_s and cue.end_s > start_s]
    hits.sort(key=lambda cue: (cue.start_s, cue.end_s))
    return " ".join(cue.text for cue in hits)
