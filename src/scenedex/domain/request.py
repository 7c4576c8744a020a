"""What to reprocess: the scope (one video, one owner, everything) and its options.

``ReprocessRequest.parse`` turns strings from the CLI and HTTP into a validated request; every
bad value is an ``InvalidRequestError`` with a one-line message.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from scenedex.domain.errors import InvalidRequestError
from scenedex.domain.model import utcnow


class ReprocessScope(StrEnum):
    VIDEO = "video"
    OWNER = "owner"
    ALL = "all"


@dataclass(frozen=True)
class ReprocessRequest:
    """What to reprocess. Video scope needs ``video_id`` (``owner_id`` optional, checked when
    given); owner scope needs ``owner_id``; all takes neither. ``since`` (timezone-aware) keeps
    only videos updated at or after it. Raises ``InvalidRequestError`` otherwise."""

    scope: ReprocessScope
    video_id: uuid.UUID | None = None
    owner_id: uuid.UUID | None = None
    force: bool = False
    since: datetime | None = None

    def __post_init__(self) -> None:
        if self.scope is ReprocessScope.VIDEO and self.video_id is None:
            raise InvalidRequestError("scope 'video' needs a video id")
        if self.scope is ReprocessScope.OWNER and self.owner_id is None:
            raise InvalidRequestError("scope 'owner' needs an owner id")
        if self.scope is ReprocessScope.OWNER and self.video_id is not None:
            raise InvalidRequestError("scope 'owner' takes no video id (use scope 'video')")
        if self.scope is ReprocessScope.ALL and (self.video_id or self.owner_id):
            raise InvalidRequestError("scope 'all' takes no video or owner id")
        if self.since is not None and self.since.tzinfo is None:
            raise InvalidRequestError("since must carry a timezone (e.g. 2026-11-01T00:00:00Z)")

    @classmethod
    def parse(
        cls,
        scope: str,
        *,
        video_id: str | None = None,
        owner_id: str | None = None,
        force: bool = False,
        since: str | None = None,
    ) -> ReprocessRequest:
        """Build a request from strings (CLI, HTTP); raises ``InvalidRequestError`` with a
        one-line message for a bad scope, uuid or timestamp. A naive ``since`` is taken as UTC."""
        try:
            parsed_scope = ReprocessScope(scope)
        except ValueError:
            choices = ", ".join(s.value for s in ReprocessScope)
            raise InvalidRequestError(f"unknown scope {scope!r} (choose one of: {choices})") from None
        parsed_since = None
        if since:
            try:
                parsed_since = datetime.fromisoformat(since.replace("Z", "+00:00"))
            except ValueError:
                raise InvalidRequestError(f"since: {since!r} is not an ISO 8601 timestamp") from None
            if parsed_since.tzinfo is None:
                parsed_since = parsed_since.replace(tzinfo=utcnow().tzinfo)
        return cls(
            scope=parsed_scope,
            video_id=parse_uuid(video_id, "video id"),
            owner_id=parse_uuid(owner_id, "owner id"),
            force=force,
            since=parsed_since,
        )


def parse_uuid(value: str | None, what: str) -> uuid.UUID | None:
    """``uuid.UUID`` of ``value`` (None stays None); raises ``InvalidRequestError``."""
    if value is None or value == "":
        return None
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise InvalidRequestError(f"{what}: {value!r} is not a UUID") from None
