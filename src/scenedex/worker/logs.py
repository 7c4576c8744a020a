"""Logging setup shared by the entry points: every line carries the log context (``job_id``,
``owner_id``, ``video_id``, ``step``, ``spec_version``, ``request_id``; see
``scenedex.domain.logcontext``), whichever logger wrote it, as text or as one JSON object per
line (``SCENEDEX_LOG_FORMAT=json``)."""

from __future__ import annotations

import inspect
import json
import logging
import os
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from typing import Any

import dramatiq

from scenedex.domain import logcontext
from scenedex.domain.logcontext import FIELDS
from scenedex.tasks.broker import REQUEST_ID_OPTION

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s%(scenedex_context)s: %(message)s"
"""``scenedex_context``: `` [job=... owner=... video=... step=... spec=... request=...]``, the fields
that are set."""

_SHORT_NAMES = dict(zip(FIELDS, ("job", "owner", "video", "step", "spec", "request"), strict=True))


class ContextFilter(logging.Filter):
    """Sets every context field on each record (so third-party lines carry them too): a value
    the record already has (``extra=``) wins, then the log context, then ``context`` (process
    defaults given to ``configure_logging``), else None."""

    def __init__(self, **context: str) -> None:
        super().__init__()
        self.context = context

    def filter(self, record: logging.LogRecord) -> bool:
        current = logcontext.current()
        for key in FIELDS:
            if getattr(record, key, None) is None:
                setattr(record, key, current.get(key, self.context.get(key)))
        return True


class TextFormatter(logging.Formatter):
    """``TEXT_FORMAT``: the context fields that are set, in brackets after the logger name."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        parts = [f"{_SHORT_NAMES[k]}={v}" for k in FIELDS if (v := getattr(record, k, None)) is not None]
        record.scenedex_context = f" [{' '.join(parts)}]" if parts else ""
        return super().format(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``timestamp`` (ISO 8601, UTC, milliseconds), ``level``,
    ``logger``, ``message``, ``process``, ``thread``, the context fields (null when not set) and,
    when the record has them, ``exception`` (the formatted traceback) and ``stack``."""

    def format(self, record: logging.LogRecord) -> str:
        timestamp = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        entry: dict[str, Any] = {
            "timestamp": timestamp.replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
            "thread": record.threadName,
        }
        for key in FIELDS:
            entry[key] = getattr(record, key, None)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


FORMATTERS: dict[str, Callable[[], logging.Formatter]] = {"text": TextFormatter, "json": JsonFormatter}


def configure_logging(level: str = "INFO", log_format: str = "text", **context: str) -> ContextFilter:
    """Log to stderr at ``level`` in ``log_format`` (``text`` or ``json``: ``Settings.log_format``);
    ``context`` gives fields for lines logged outside any log context (e.g. the CLI's spec
    version). Returns the filter so callers can update those defaults. With ``json``, tqdm and
    Hugging Face progress bars are turned off (unless set otherwise in the environment) so that
    stderr holds JSON lines only; call it before the model libraries are imported."""
    if log_format not in FORMATTERS:
        raise ValueError(f"log format must be one of {', '.join(FORMATTERS)}; got {log_format!r}")
    if log_format == "json":  # progress bars (transformers' "Loading weights") are not JSON lines
        os.environ.setdefault("TQDM_DISABLE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(FORMATTERS[log_format]())
    context_filter = ContextFilter(**context)
    handler.addFilter(context_filter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    return context_filter


def install_log_context(broker: Any) -> LogContextMiddleware:
    """Add ``LogContextMiddleware`` to ``broker`` as its first middleware: dramatiq runs the
    ``after_*`` hooks in reverse order, so its context is still set while the others (Retries:
    "Retrying message...", "Retries exceeded...") log."""
    middleware = LogContextMiddleware()
    first = type(broker.middleware[0]) if broker.middleware else None
    broker.add_middleware(middleware, before=first)
    return middleware


class LogContextMiddleware(dramatiq.Middleware):
    """Puts a message's ids (the actor's ``job_id``, ``video_id`` and ``owner_id`` arguments, and
    the ``request_id`` of the API request that sent it: its ``REQUEST_ID_OPTION``, which
    ``tasks.broker.CarryRequestId`` sets, None when no request sent it) in the log context from
    before it is processed until after, so that dramatiq's own lines about
    it (a failure with its traceback, a retry) carry them too; the actors set the rest. Install
    it with ``install_log_context``."""

    def __init__(self) -> None:
        self._tokens = threading.local()

    def before_process_message(self, broker: Any, message: Any) -> None:
        self.after_process_message(broker, message)  # a context left over (no after hook ran)
        try:
            fn = broker.get_actor(message.actor_name).fn
        except dramatiq.ActorNotFound:
            return
        request_id = message.options.get(REQUEST_ID_OPTION)
        self._tokens.token = logcontext.push(
            request_id=request_id, **_id_arguments(fn, message.args, message.kwargs)
        )

    def after_process_message(
        self, broker: Any, message: Any, *, result: Any = None, exception: BaseException | None = None
    ) -> None:
        token = getattr(self._tokens, "token", None)
        if token is not None:
            self._tokens.token = None
            logcontext.pop(token)

    def after_skip_message(self, broker: Any, message: Any) -> None:
        self.after_process_message(broker, message)


def _id_arguments(fn: Callable[..., Any], args: Any, kwargs: Any) -> dict[str, object]:
    try:
        bound = _signature(fn).bind_partial(*args, **kwargs).arguments
    except TypeError:  # arguments that do not fit: the actor call will fail and say so
        return {}
    return {name: bound[name] for name in ("job_id", "owner_id", "video_id") if name in bound}


@cache
def _signature(fn: Callable[..., Any]) -> inspect.Signature:
    return inspect.signature(fn)
