"""Operating the indexes: status, rollback and prune (``scenedex index ...``).

Rollback undoes the last step. While building it abandons the build (the write alias goes back
to the read index); when live it moves both aliases, in one ``_aliases`` call, to the newest
older index not rolled back. Either way the index left is marked ``rolled_back_at`` in its
mapping ``_meta`` first (cleared again if the alias call fails): a worker whose spec targets a
marked index refuses to write to or promote it, so a worker still running the rolled-back
settings cannot silently undo the rollback. ``prune`` deletes what no alias points at,
including marked indexes, after which that spec can be built again from scratch.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from opensearchpy.exceptions import TransportError

from scenedex.adapters.opensearch.layout import META_KEY, move_alias_actions
from scenedex.adapters.opensearch.state import AliasState, IndexInfo, IndexStatus, meta_of
from scenedex.domain.errors import InvalidRequestError

if TYPE_CHECKING:
    from scenedex.adapters.opensearch.index import OpenSearchIndex

log = logging.getLogger("scenedex.opensearch")


def index_status(index: OpenSearchIndex) -> IndexStatus:
    """Aliases, every scene index (documents, creation time, spec and models from its
    ``_meta``, roles) and, while building, the coverage of the index being built."""
    state = index.aliases()
    target = index.layout.index
    infos = []
    if state.indexes:
        mappings = index.client.indices.get_mapping(index=index.names.pattern)
        settings = index.client.indices.get_settings(index=index.names.pattern, name="index.creation_date")
        for name in state.indexes:
            roles = [
                role
                for role, hit in (("read", state.read), ("write", state.write), ("target", target))
                if hit == name
            ]
            created = settings.get(name, {}).get("settings", {}).get("index", {}).get("creation_date")
            infos.append(
                IndexInfo(
                    name=name,
                    docs=int(index.client.count(index=name)["count"]),
                    created_at=datetime.fromtimestamp(int(created) / 1000, UTC) if created else None,
                    meta=meta_of(mappings.get(name, {})),
                    roles=tuple(roles),
                )
            )
    coverage = None
    if state.phase == "building" and state.write and index.tracks_coverage:
        fingerprint = next((i.meta for i in infos if i.name == state.write), {}).get("fingerprint", "")
        coverage = index.coverage(state.write, fingerprint)
    return IndexStatus(index.names.read_alias, index.names.write_alias, state, target, tuple(infos), coverage)


def rollback(index: OpenSearchIndex) -> str:
    """Undo the last step, and say what was done. Building: abandon the build (the write
    alias goes back to the read index). Live: both aliases go back to the newest older index
    that was not rolled back. The index left is marked rolled back in its ``_meta``."""
    state = index.aliases()
    if state.phase == "none" or state.read is None:
        raise InvalidRequestError("no read alias: nothing to roll back")
    if state.phase == "building":
        assert state.write is not None
        set_rolled_back(index, state.write, True)
        _update_aliases(
            index,
            move_alias_actions(index.names.write_alias, state.write, state.read, write=True),
            undo=state.write,
        )
        return f"abandoned the build of {state.write}; writes go to {state.read} again"
    current = state.read
    previous = _previous_index(index, state, current)
    if previous is None:
        raise InvalidRequestError(f"no older index than {current} to roll back to (pruned?)")
    set_rolled_back(index, current, True)
    _update_aliases(
        index,
        move_alias_actions(index.names.read_alias, current, previous)
        + move_alias_actions(index.names.write_alias, state.write, previous, write=True),
        undo=current,
    )
    index.forget_read_meta()
    return f"rolled back from {current} to {previous} (read and write aliases)"


def prune(index: OpenSearchIndex, *, dry_run: bool = False) -> list[str]:
    """Delete every scene index that no alias points at (old and rolled-back ones); returns
    their names (only lists them with ``dry_run``)."""
    state = index.aliases()
    victims = [i for i in state.indexes if i not in (state.read, state.write)]
    if victims and not dry_run:
        index.client.indices.delete(index=",".join(victims))
        log.info("pruned %s", ", ".join(victims))
    return victims


def _previous_index(index: OpenSearchIndex, state: AliasState, current: str) -> str | None:
    settings = index.client.indices.get_settings(index=index.names.pattern, name="index.creation_date")

    def created(name: str) -> int:
        return int(settings.get(name, {}).get("settings", {}).get("index", {}).get("creation_date", 0))

    older = [
        name
        for name in state.indexes
        if name != current
        and created(name) <= created(current)
        and not index.meta(name).get("rolled_back_at")
    ]
    return max(older, key=created, default=None)


def set_rolled_back(index: OpenSearchIndex, name: str, rolled_back: bool) -> None:
    """Mark ``name`` rolled back in its mapping ``_meta`` (or clear the mark); the rest of the
    ``_meta`` is kept (a ``_meta`` update replaces the whole object)."""
    meta = index.meta(name)
    if rolled_back:
        meta["rolled_back_at"] = datetime.now(UTC).isoformat()
    elif "rolled_back_at" in meta:
        del meta["rolled_back_at"]
    else:
        return
    index.client.indices.put_mapping(index=name, body={"_meta": {META_KEY: meta}})


def _update_aliases(index: OpenSearchIndex, actions: list[dict[str, Any]], *, undo: str) -> None:
    """Apply ``actions``; if they fail, clear the rolled-back mark just put on ``undo``."""
    try:
        index.client.indices.update_aliases(body={"actions": actions})
    except TransportError:
        set_rolled_back(index, undo, False)
        raise
