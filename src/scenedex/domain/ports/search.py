"""The search index port: scene documents written, read back and searched per owner."""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol, runtime_checkable

from scenedex.domain.model import (
    RecordState,
    SceneDocument,
    SearchHit,
    SearchQuery,
)


class SearchIndex(Protocol):
    """Where scene documents are indexed for search."""

    def upsert(self, documents: Sequence[SceneDocument]) -> Mapping[uuid.UUID, str]:
        """Insert or replace documents by scene id (idempotent). Returns the documents the
        index rejected, scene id -> reason (empty when every document was written): a rejected
        document fails its scene, not the run. A document the index already holds in a newer
        version is not a rejection. Raises when nothing could be written (unreachable index)."""
        ...

    def states(
        self, owner_id: uuid.UUID, scene_ids: Iterable[uuid.UUID] | None
    ) -> dict[uuid.UUID, RecordState]:
        """Fingerprint and input hash of the owner's indexed documents among ``scene_ids``
        (``None``: all of the owner's documents, read set-wise for planning large scopes)."""
        ...

    def delete(self, owner_id: uuid.UUID, scene_ids: Iterable[uuid.UUID]) -> None:
        """Remove the owner's documents for ``scene_ids`` (missing ones are ignored)."""
        ...

    def search(self, owner_id: uuid.UUID, query: SearchQuery, k: int) -> builtins.list[SearchHit]:
        """The owner's ``k`` nearest scenes for ``query``, best first (filtered by owner before
        ranking, so k hits come back whenever the owner has k comparable documents)."""
        ...


@runtime_checkable
class IndexGeneration(Protocol):
    """Optional on a ``SearchIndex`` whose documents can vanish wholesale (an index created anew)."""

    def generation(self) -> str | None:
        """Id of the index ``states`` reads, new when it is created anew (None: there is none);
        raises ``TransientError`` when the index cannot be reached."""
        ...
