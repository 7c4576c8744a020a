"""One line of a health report (``Check``: name, status, what was found, how to fix it), the
helpers that make one, and the short cause of a client's connection error."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from scenedex.adapters.model_files import one_line


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Check:
    """One line of the report: ``fix`` says what to do when the status is not OK."""

    name: str
    status: Status
    detail: str
    fix: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status.value}


def ok(name: str, detail: str) -> Check:
    return Check(name, Status.OK, detail)


def warn(name: str, detail: str, fix: str | None = None) -> Check:
    return Check(name, Status.WARN, detail, fix)


def fail(name: str, detail: str, fix: str | None = None) -> Check:
    return Check(name, Status.FAIL, detail, fix)


def reason(error: BaseException, timeout: float) -> str:
    """A short cause for a client connection error (theirs are long and nested)."""
    text = one_line(error)
    for marker, short in (
        ("Connection refused", "connection refused"),
        ("timed out", f"no answer within {timeout:g} s"),
        ("Name or service not known", "host name not found"),
        ("Temporary failure in name resolution", "host name not found"),
        ("CERTIFICATE_VERIFY_FAILED", "certificate not trusted"),
    ):
        if marker in text:
            return short
    return text[:200]
