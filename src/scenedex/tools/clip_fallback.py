"""Offline fallback for the demo and the bench: untrained CLIP weights, said out loud.

Random weights are never used silently (they are only chosen here, with a note to the user,
and their model id reads ``untrained``)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from scenedex.domain.errors import ModelLoadError

log = logging.getLogger(__name__)


def services_with_usable_clip(
    make_services: Callable[[bool], Any], say: Callable[[str], None], fallback: str
) -> tuple[Any, str | None]:
    """``make_services(False)`` when its CLIP weights load; otherwise says why (the note ends
    with ``fallback``, what the caller does with untrained weights) and returns
    ``make_services(True)`` (``SCENEDEX_CLIP__PRETRAINED=none``), with CLIP loaded, and that note.
    Other ``ModelLoadError``s of the untrained model propagate."""
    services = make_services(False)
    try:
        services.image_embedder.load()
    except ModelLoadError as error:
        log.info("CLIP weights not loadable: %s", error)
        note = (
            f"Pretrained CLIP weights ({services.image_embedder.model_id}) are not available offline "
            f"here. {fallback}"
        )
        say(note)
        services = make_services(True)
        services.image_embedder.load()
        return services, note
    return services, None
