"""The log context: fields every log line carries while a job, an item or a step runs.

Held in a ``contextvars.ContextVar``, so each thread (a Dramatiq worker thread runs one message
at a time) and each asyncio task has its own, and nothing needs to be passed down: the actors
set the job, the coordinator the item's owner and video, the runner the step, and the logging
filter of ``scenedex.worker.logs`` copies the fields onto every record, whichever logger (ours,
dramatiq's, opensearch-py's...) wrote it. Standard library only: ``domain`` uses it.

    with log_context(job_id=job.id, video_id=video_id) as context:
        item = claim()
        context.update(owner_id=item.owner_id)
        log.info("...")  # carries job_id, video_id and owner_id
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from types import MappingProxyType
from typing import Any

FIELDS = ("job_id", "owner_id", "video_id", "step", "spec_version", "request_id")
"""The context fields, in the order the text format shows them (``request_id``: the API
request's ``X-Request-ID``, ``api.request_id``)."""

_EMPTY: Mapping[str, str] = MappingProxyType({})
_fields: ContextVar[Mapping[str, str]] = ContextVar("scenedex_log_context", default=_EMPTY)


def current() -> dict[str, str]:
    """The fields set now (a field that is not set is absent)."""
    return dict(_fields.get())


def _merged(fields: Mapping[str, object]) -> Mapping[str, str]:
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise TypeError(f"unknown log context fields: {sorted(unknown)} (known: {', '.join(FIELDS)})")
    merged = dict(_fields.get())
    for name, value in fields.items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = str(value)
    return MappingProxyType(merged)


def push(**fields: object) -> Token[Mapping[str, str]]:
    """Set ``fields`` (None unsets one) until ``pop`` is called with the returned token; for
    hooks that cannot use a ``with`` block (a Dramatiq middleware's before/after pair)."""
    return _fields.set(_merged(fields))


def pop(token: Token[Mapping[str, str]]) -> None:
    """Restore the fields as they were before the ``push`` that returned ``token``."""
    _fields.reset(token)


class LogContext:
    """The block opened by ``log_context``; ``update`` adds fields learnt inside it."""

    def update(self, **fields: object) -> None:
        """Set more fields (None unsets one) until the block ends. Call it in the block itself,
        not inside a nested ``log_context`` (which would drop the update when it ends)."""
        _fields.set(_merged(fields))


@contextmanager
def log_context(**fields: object) -> Iterator[LogContext]:
    """Add ``fields`` (values shown with ``str``; None unsets a field) to every line logged in
    the block, on top of the enclosing context; restored when the block ends."""
    token = push(**fields)
    try:
        yield LogContext()
    finally:
        pop(token)


class SpecLogger(logging.LoggerAdapter[logging.Logger]):
    """Logger whose every record carries ``spec_version`` (and any other context) as extras,
    for the formatter set up by ``scenedex.worker.logs``."""

    def __init__(self, spec_version: str, **context: Any) -> None:
        super().__init__(logging.getLogger("scenedex.reprocess"), {"spec_version": spec_version, **context})

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {**(self.extra or {}), **kwargs.get("extra", {})}
        return msg, kwargs
