from __future__ import annotations

from pathlib import Path

import pytest

from scenedex.adapters.subtitles import Cue, load_cues, transcript_for
from scenedex.domain.errors import BadInputError

SRT = """\
2
00:00:04,000 --> 00:00:06,000
Second cue comes <b>later</b>
in the file but sorts second.

1
00:00:01,000 --> 00:00:02,500
<i>Hello</i> there,
<font color="#ff0000">friend</font>!

3
00:00:06,000 --> 00:00:07,000
<i></i>

4
00:00:07,000 --> 00:00:08,500
Last   one
"""

VTT = """\
WEBVTT
Kind: captions

NOTE this note comes before any cue

intro
00:00:01.000 --> 00:00:02.000 align:start position:10%
<v Roger><i>Hi</i> Bob,</v>
how are you?

00:00:02.000 --> 00:00:03.500
<c.yellow>Fine</c> &amp; you? <00:00:02.500>Good.

NOTE a note between cues

empty-one
00:03.500 --> 00:04.000

00:00:04.000 --> 00:00:05.000
Bye &lt;3
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_srt_cues_are_plain_sorted_and_non_empty(tmp_path: Path) -> None:
    cues = load_cues(_write(tmp_path, "movie.srt", SRT))
    assert cues == [
        Cue(1.0, 2.5, "Hello there, friend!"),
        Cue(4.0, 6.0, "Second cue comes later in the file but sorts second."),
        Cue(7.0, 8.5, "Last one"),
    ]


def test_vtt_cues_are_plain_and_ids_notes_are_not_text(tmp_path: Path) -> None:
    cues = load_cues(_write(tmp_path, "movie.vtt", VTT))
    assert cues == [
        Cue(1.0, 2.0, "Hi Bob, how are you?"),
        Cue(2.0, 3.5, "Fine & you? Good."),
        Cue(4.0, 5.0, "Bye <3"),
    ]


def test_vtt_with_bom_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "bom.vtt"
    path.write_bytes(("\ufeff" + VTT).replace("\n", "\r\n").encode("utf-8"))
    assert [c.text for c in load_cues(path)] == ["Hi Bob, how are you?", "Fine & you? Good.", "Bye <3"]


def test_uppercase_extension_and_str_path(tmp_path: Path) -> None:
    path = _write(tmp_path, "MOVIE.SRT", SRT)
    assert len(load_cues(str(path))) == 3


def test_unsupported_extension_raises(tmp_path: Path) -> None:
    path = _write(tmp_path, "movie.ass", SRT)
    with pytest.raises(BadInputError, match="unsupported subtitle file"):
        load_cues(path)


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="not found"):
        load_cues(tmp_path / "nope.srt")


def test_garbage_content_raises(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="cannot parse"):
        load_cues(_write(tmp_path, "garbage.vtt", "this is not a subtitle file\n"))


def test_non_utf8_raises(tmp_path: Path) -> None:
    path = tmp_path / "latin1.srt"
    path.write_bytes(SRT.replace("Hello", "H\u00e9llo").encode("latin-1"))
    with pytest.raises(BadInputError, match="UTF-8"):
        load_cues(path)


CUES = [
    Cue(0.0, 2.0, "a"),
    Cue(2.0, 4.0, "b"),
    Cue(3.5, 5.0, "c"),
    Cue(5.0, 6.0, "d"),
]


def test_cue_ending_at_scene_start_is_not_included() -> None:
    # "a" ends exactly at 2.0 and "d" starts exactly at 5.0: both outside [2.0, 5.0).
    assert transcript_for(2.0, 5.0, CUES) == "b c"


def test_cue_straddling_boundaries_is_included() -> None:
    assert transcript_for(1.0, 3.6, CUES) == "a b c"
    assert transcript_for(4.5, 4.6, CUES) == "c"


def test_transcript_is_in_time_order_whatever_the_input_order() -> None:
    assert transcript_for(0.0, 10.0, list(reversed(CUES))) == "a b c d"


def test_no_overlap_or_empty_interval_gives_empty_string() -> None:
    assert transcript_for(6.0, 9.0, CUES) == ""
    assert transcript_for(3.0, 3.0, CUES) == ""
    assert transcript_for(0.0, 1.0, []) == ""


def test_transcript_over_loaded_srt(tmp_path: Path) -> None:
    cues = load_cues(_write(tmp_path, "movie.srt", SRT))
    assert transcript_for(0.0, 4.0, cues) == "Hello there, friend!"
    assert transcript_for(2.5, 7.0, cues) == "Second cue comes later in the file but sorts second."
