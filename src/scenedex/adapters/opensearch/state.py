"""The adapter's errors and the reports it returns: alias state, coverage, index status."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from opensearchpy.exceptions import ConnectionError as OpenSearchConnectionError
from opensearchpy.exceptions import TransportError

from scenedex.adapters.opensearch.layout import META_KEY
from scenedex.domain.errors import OPENSEARCH, DependencyUnavailableError, PermanentError, TransientError


class SearchIndexBusyError(TransientError):
    """The write alias belongs to another configuration's index (a build under another spec)."""


class RolledBackIndexError(PermanentError):
    """This configuration's index was rolled back: it is not written to or promoted again."""


@dataclass(frozen=True)
class AliasState:
    """Which concrete index each alias points at (None: the alias does not exist), and every
    scene index that exists."""

    read: str | None
    write: str | None
    indexes: tuple[str, ...] = ()

    @property
    def phase(self) -> str:
        """``none``, ``live`` (both aliases on one index) or ``building``."""
        if self.read is None and self.write is None:
            return "none"
        return "live" if self.read == self.write else "building"


@dataclass(frozen=True)
class Coverage:
    """Per owner ``(documents of the index's fingerprint, scenes in the database)``."""

    index: str
    owners: Mapping[uuid.UUID, tuple[int, int]]

    @property
    def complete(self) -> bool:
        return all(indexed == scenes for indexed, scenes in self.owners.values())

    @property
    def totals(self) -> tuple[int, int]:
        return sum(i for i, _ in self.owners.values()), sum(s for _, s in self.owners.values())

    def to_dict(self) -> dict[str, Any]:
        indexed, scenes = self.totals
        return {
            "index": self.index,
            "complete": self.complete,
            "indexed": indexed,
            "scenes": scenes,
            "owners_behind": {
                str(owner): {"indexed": i, "scenes": s} for owner, (i, s) in self.owners.items() if i != s
            },
        }


@dataclass(frozen=True)
class IndexInfo:
    name: str
    docs: int
    created_at: datetime | None
    meta: Mapping[str, Any]
    roles: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "docs": self.docs,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "roles": list(self.roles),
            "fingerprint": self.meta.get("fingerprint"),
            "spec_version": self.meta.get("spec_version"),
            "model_ids": self.meta.get("model_ids"),
            "dimensions": self.meta.get("dimensions"),
            "rolled_back_at": self.meta.get("rolled_back_at"),
        }


@dataclass(frozen=True)
class IndexStatus:
    read_alias: str
    write_alias: str
    state: AliasState
    target: str
    indexes: tuple[IndexInfo, ...]
    coverage: Coverage | None = None

    def to_dict(self) -> dict[str, Any]:
        """``{"phase", "aliases": {read, write}, "target", "indexes": [...], "coverage"}``."""
        return {
            "phase": self.state.phase,
            "aliases": {
                self.read_alias: self.state.read,
                self.write_alias: self.state.write,
            },
            "target": self.target,
            "indexes": [info.to_dict() for info in self.indexes],
            "coverage": self.coverage.to_dict() if self.coverage else None,
        }


def meta_of(mapping_response: Mapping[str, Any]) -> dict[str, Any]:
    """The scenedex part of the ``_meta`` in one index's ``GET _mapping`` answer."""
    meta = mapping_response.get("mappings", {}).get("_meta", {}).get(META_KEY, {})
    return dict(meta)


def reason(error: Any) -> str:
    """One line out of a bulk item's ``error`` object."""
    if isinstance(error, dict):
        cause = error.get("caused_by", {}).get("reason")
        reason = error.get("reason") or error.get("type") or str(error)
        return f"{reason} ({cause})" if cause else str(reason)
    return str(error)


@contextmanager
def transient(what: str) -> Iterator[None]:
    """Connection failures, timeouts and 429/5xx answers become ``DependencyUnavailableError``
    (``opensearch``: the work is held while the cluster's circuit breaker is open); other
    errors pass through."""
    try:
        yield
    except OpenSearchConnectionError as error:
        raise DependencyUnavailableError(
            OPENSEARCH, f"OpenSearch unreachable during {what}: {error}"
        ) from error
    except TransportError as error:
        status = error.status_code
        if isinstance(status, int) and (status == 429 or status >= 500):
            raise DependencyUnavailableError(OPENSEARCH, f"OpenSearch busy during {what}: {error}") from error
        raise
