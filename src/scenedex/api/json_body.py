"""JSON request bodies the API refuses before any route reads them, and errors it can always
echo (issue 25).

Python's ``json`` (which FastAPI parses bodies with) accepts ``NaN``, ``Infinity`` and
``-Infinity``, reads ``1e999`` as infinity, and keeps a ``\\u0000`` or a lone surrogate
(``\\ud800``) as a character of the string. None of them is JSON a client means: a non-finite
number cannot be written back (``json.dumps(..., allow_nan=False)`` refuses it, so a 422 that
echoed one failed with a 500), a NUL cannot be stored in a Postgres text or jsonb value, a lone
surrogate cannot be encoded as UTF-8. ``JsonBodyGuard`` (``api.app``) refuses them anywhere in a body, with
nesting deeper than ``MAX_JSON_DEPTH`` and integers beyond 64 bits, as a 422 in the API's error
shape, so no route, schema or use case has to know about them. ``echoable`` makes what a 422
echoes serialisable whatever it holds (query strings and form fields, which the guard does not
read, included).
"""

from __future__ import annotations

import json
import math
import re
from email.message import Message
from typing import Any

from fastapi.encoders import jsonable_encoder

MAX_JSON_DEPTH = 32
"""Deepest nesting (arrays and objects) a request body may have; the deepest request the API
takes (a video's scenes) nests 3 levels."""

MAX_JSON_INTEGER = 2**63 - 1
"""Largest magnitude of an integer in a body (a Postgres ``bigint``); larger ones are refused
before they are converted (Python's ``int`` would take 4300 digits)."""

_INVALID_CHARACTER = re.compile("[\x00\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_ECHO_DEPTH = 16  # deeper parts of an echoed input are elided


class InvalidJsonError(Exception):
    """A body that parses as JSON but holds what the API refuses (the reason, without the
    input). Not a ``ValueError``: ``json``'s own errors must not be taken for it."""


def _refuse_constant(name: str) -> Any:
    raise InvalidJsonError(f"{name} is not a JSON number (non-finite numbers are refused)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InvalidJsonError("a number out of the range of a double (it reads as infinity)")
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > 19 or abs(value := int(text)) > MAX_JSON_INTEGER:
        raise InvalidJsonError(f"an integer beyond ±{MAX_JSON_INTEGER}")
    return value


def json_body_problem(body: bytes) -> str | None:
    """Why ``body`` (a request's bytes) is refused although Python's ``json`` parses it: a
    non-finite number, an integer beyond ``MAX_JSON_INTEGER``, a NUL or a lone surrogate in a
    string or a key, nesting deeper than ``MAX_JSON_DEPTH`` (or past the parser's recursion
    limit). None when it is fine, and when it is not JSON or not text at all (FastAPI answers
    those as before: 422 ``json_invalid``, 400)."""
    try:
        document = json.loads(
            body, parse_constant=_refuse_constant, parse_float=_finite_float, parse_int=_bounded_int
        )
    except InvalidJsonError as refused:
        return str(refused)
    except RecursionError:
        return f"nested deeper than {MAX_JSON_DEPTH} levels"
    except ValueError:  # not JSON, not UTF-8/16/32 text: FastAPI's parse says so
        return None
    stack: list[tuple[Any, int]] = [(document, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            if _INVALID_CHARACTER.search(value):
                return "a string holds a NUL character or a lone surrogate (\\u0000, \\ud800-\\udfff)"
        elif isinstance(value, (dict, list)):
            if depth >= MAX_JSON_DEPTH:
                return f"nested deeper than {MAX_JSON_DEPTH} levels"
            if isinstance(value, dict):
                stack.extend((key, depth + 1) for key in value)
                stack.extend((item, depth + 1) for item in value.values())
            else:
                stack.extend((item, depth + 1) for item in value)
    return None


def parsed_as_json(headers: dict[bytes, bytes]) -> bool:
    """Whether FastAPI parses a body with these headers as JSON: no ``Content-Type``, or
    ``application/json`` or ``application/*+json`` (its own rule, ``fastapi.routing``)."""
    content_type = headers.get(b"content-type")
    if not content_type:
        return True
    message = Message()
    message["content-type"] = content_type.decode("latin-1")
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


def echoable(value: Any, depth: int = 0) -> Any:
    """``value`` (a validation error's ``input``, ``ctx``...) as something ``JSONResponse``
    always writes: non-finite floats as the strings ``"NaN"``, ``"Infinity"``,
    ``"-Infinity"``; lone surrogates as U+FFFD; bytes decoded as UTF-8 with U+FFFD for what is
    not; anything nested deeper than 16 levels as ``"…"``; other objects through FastAPI's
    ``jsonable_encoder`` (their ``str`` if it fails)."""
    if depth > _ECHO_DEPTH:
        return "…"
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, dict):
        return {str(echoable(key, depth + 1)): echoable(item, depth + 1) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [echoable(item, depth + 1) for item in value]
    try:
        encoded = jsonable_encoder(value)
    except Exception:  # an object FastAPI cannot encode: its text
        return echoable(str(value), depth + 1)
    return echoable(encoded, depth + 1)
