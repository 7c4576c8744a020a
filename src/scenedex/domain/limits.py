"""Bounds on what a caller may ask for: every number and string of a request is held to one
of these (schema bounds in ``api/schemas.py``, checks in the use cases), so no input can make a
worker allocate in proportion to a number it chose.

Where a value comes from is said beside it; settings (``SCENEDEX_*``) bound what is tunable
per deployment (blob sizes), these bound what is a fact of the domain.
"""

from __future__ import annotations

MAX_MEDIA_SECONDS = 48 * 3600.0
"""Longest video scenedex accepts, and so the largest scene time (seconds) a request may
give: 48 h, twice the longest single-take broadcasts on record (24 h live streams). Scene
times are then checked against the probed duration on the worker (``DURATION_TOLERANCE_S``)."""

DURATION_TOLERANCE_S = 1.0
"""How far past the probed duration (seconds) an upstream scene may end: containers and
streams disagree by a frame or two, and pipelines round to the second. A scene ending later,
or starting at or after the end, fails the video with an error naming it."""

DEFAULT_MAX_IMAGE_BYTES = 32 * 1024 * 1024
"""Largest keyframe or photo read (bytes) when no setting says otherwise
(``SCENEDEX_MAX_IMAGE_BYTES`` has the same default)."""

MAX_SUBTITLES_BYTES = 8 * 1024 * 1024
"""Largest subtitle file read (bytes): a 48-hour SRT at a cue every 2 s is about 6 MB."""

MAX_TEXT_CHARS = 100_000
"""Longest scene text (transcript, visual description, summary) in characters."""

MAX_URI_CHARS = 2048
"""Longest URI a request may give (the de-facto URL limit of browsers and proxies)."""
