"""Logging setup shared by the entry points: every line carries the run's context
(``spec_version``, later job and owner ids), whichever logger wrote it."""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)s spec=%(spec_version)s %(name)s: %(message)s"


class ContextFilter(logging.Filter):
    """Fills context attributes a record lacks (so third-party lines carry them too)."""

    def __init__(self, **context: str) -> None:
        super().__init__()
        self.context = context

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in self.context.items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


def configure_logging(level: str = "INFO", **context: str) -> ContextFilter:
    """Log to stderr at ``level``; returns the filter so callers can update the context."""
    context.setdefault("spec_version", "-")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    context_filter = ContextFilter(**context)
    handler.addFilter(context_filter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    return context_filter
