"""One exception tree for scenedex.

``PermanentError`` means retrying cannot help (bad input, unknown ids, bad request);
``TransientError`` means a retry may succeed (connection lost, service busy). Per-item failures
during a run are ``BadInputError``s recorded on the progress; the run goes on.
"""

from __future__ import annotations


class ScenedexError(Exception):
    """Base of every error scenedex raises on purpose."""


class PermanentError(ScenedexError):
    """Retrying the same work cannot succeed."""


class TransientError(ScenedexError):
    """The same work may succeed when retried (after a backoff)."""


class DependencyUnavailableError(TransientError):
    """A dependency the work needs cannot serve it now (connection refused, timeout, 5xx, 429):
    the work is held until the dependency's circuit breaker closes again, not failed.

    ``dependency``: one of ``DEPENDENCIES`` (``embedding``, ``opensearch``, ``database``,
    ``blobs``, ``redis``)."""

    def __init__(self, dependency: str, message: str) -> None:
        super().__init__(message)
        self.dependency = dependency


EMBEDDING = "embedding"
"""The embedding service (``SCENEDEX_EMBEDDER__BACKEND=http``)."""
OPENSEARCH = "opensearch"
DATABASE = "database"
BLOBS = "blobs"
REDIS = "redis"
DEPENDENCIES = (EMBEDDING, OPENSEARCH, DATABASE, BLOBS, REDIS)
"""The dependencies that can be down, each with its circuit breaker (``adapters.breakers``)."""


class InvalidRequestError(PermanentError):
    """A request is malformed: wrong scope arguments, bad ids, bad values."""


class NotFoundError(PermanentError):
    """An id names nothing the caller's owner has (never reveals another owner's rows)."""


class ConflictError(PermanentError):
    """A create names something that exists with other fields (e.g. a video's
    ``external_id`` given again with another source): the API answers 409."""


class KindUnavailableError(ConflictError):
    """A search kind whose model is switched off (``SCENEDEX_EMBEDDER__CLIP=off``): the API
    answers 409 with ``type`` ``search_kind_unavailable`` and the ``kind`` (e.g. ``image``)."""

    type = "search_kind_unavailable"

    def __init__(self, kind: str, setting: str) -> None:
        super().__init__(f"{kind} search is unavailable: its model is switched off ({setting}=off)")
        self.kind = kind


class PayloadTooLargeError(InvalidRequestError):
    """An uploaded or named image is over the configured size limit (the API answers 413)."""


class UnsupportedMediaTypeError(InvalidRequestError):
    """An uploaded or named file is not a decodable image (the API answers 415)."""


class BadInputError(PermanentError):
    """One input item cannot be processed: missing file, corrupt, empty or oversized image."""


class BlobNotFoundError(BadInputError):
    """The blob store has nothing at the given URI."""


class BlobTooLargeError(BadInputError):
    """A blob is larger than the cap of the read that asked for it (checked from the object's
    size before reading, and again while streaming)."""


class ModelLoadError(PermanentError):
    """A model's weights cannot be loaded with the configured settings."""
