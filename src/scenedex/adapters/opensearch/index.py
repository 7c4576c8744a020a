"""``OpenSearchIndex``: the SearchIndex port on OpenSearch, with versioned indexes behind a
read alias and a write alias.

States (``aliases()``), for the index ``T`` this configuration writes (named from its
SEARCH_REINDEX fingerprint) and the read alias ``R`` / write alias ``W``:

- **none**: no alias. The first write creates ``T`` and points both aliases at it in one
  ``_aliases`` call (there is nothing older to keep serving).
- **live**: ``R`` and ``W`` on the same index ``L``. If ``L == T`` writes go in place. Otherwise
  (a new spec) the first write creates ``T`` and moves ``W`` to it: the state becomes
- **building**: ``W`` on ``T``, ``R`` still on the complete old index. Searches keep reading
  ``R``; writes and ``states()`` go to ``T``, so the runner plans against the index being built
  and a resumed reprocess only sends what ``T`` lacks. After every write while building, the
  adapter checks coverage (documents of ``T``'s fingerprint per owner equal the scenes per owner
  in the database) and, when complete, moves ``R`` to ``T`` in one atomic ``_aliases`` call
  whose ``remove`` has ``must_exist`` (of concurrent workers exactly one promotes).

Only the configuration whose index is behind ``W`` writes: a worker of another spec (the old
one during a rolling deploy, or a third) gets ``SearchIndexBusyError`` (transient: the message
is retried, and lands on an up-to-date worker). ``rollback()`` marks the index it leaves in its
mapping ``_meta``; a marked index is never written to or promoted again (``RolledBackIndexError``)
until ``prune()`` deletes it. Old indexes stay until ``prune()``.
"""

from __future__ import annotations

import builtins
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opensearchpy import OpenSearch, helpers
from opensearchpy.exceptions import NotFoundError, RequestError

from scenedex.adapters.opensearch import admin
from scenedex.adapters.opensearch.layout import (
    IndexLayout,
    IndexNames,
    bulk_action,
    delete_body,
    move_alias_actions,
)
from scenedex.adapters.opensearch.queries import pipeline_body, search_hit, search_plan
from scenedex.adapters.opensearch.reads import get_states, scan_states
from scenedex.adapters.opensearch.state import (
    AliasState,
    Coverage,
    IndexStatus,
    RolledBackIndexError,
    SearchIndexBusyError,
    meta_of,
    reason,
    transient,
)
from scenedex.domain.errors import InvalidRequestError, PermanentError, TransientError
from scenedex.domain.model import (
    OCR_CHANNEL,
    TEXT_CHANNELS,
    RecordState,
    SceneDocument,
    SearchHit,
    SearchQuery,
)

log = logging.getLogger("scenedex.opensearch")

READ_META_TTL_S = 10.0


@dataclass
class _Cache:
    pipelines: set[str] = field(default_factory=set)
    read_meta: tuple[float, str | None, Mapping[str, Any]] | None = None
    last_version: int = 0


class OpenSearchIndex:
    """SearchIndex on OpenSearch (see the module docstring for the alias states).

    - ``layout``: the index this configuration writes, or a callable returning it (resolved on
      first use: it needs the spec and the embedders' vector sizes).
    - ``scene_counts``: scenes per owner in the database; without it a building index is never
      promoted automatically (``promote_if_complete()`` says why).
    - bulk writes: ``max_chunk_bytes`` per request; documents answered 429 are re-sent up to
      ``bulk_retries`` times, waiting ``initial_backoff`` seconds doubled per try up to
      ``max_backoff``.
    - ``clock``: nanoseconds since the epoch; a write's external version is its time in
      microseconds, kept strictly increasing within the process.

    Safe to share between threads: the client is, and the caches are guarded by a lock.
    """

    def __init__(
        self,
        client: OpenSearch,
        layout: IndexLayout | Callable[[], IndexLayout],
        *,
        names: IndexNames | None = None,
        scene_counts: Callable[[], Mapping[uuid.UUID, int]] | None = None,
        max_chunk_bytes: int = 10 * 1024 * 1024,
        bulk_retries: int = 3,
        initial_backoff: float = 1.0,
        max_backoff: float = 30.0,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        if names is None:
            if not isinstance(layout, IndexLayout):
                raise TypeError("names is required when layout is a callable")
            names = layout.names
        self.client = client
        self.names = names
        self._layout_source = layout
        self._layout: IndexLayout | None = layout if isinstance(layout, IndexLayout) else None
        self._scene_counts = scene_counts
        self._bulk_options: dict[str, Any] = {
            "max_chunk_bytes": max_chunk_bytes,
            "max_retries": bulk_retries,
            "initial_backoff": initial_backoff,
            "max_backoff": max_backoff,
        }
        self._clock = clock
        self._lock = threading.Lock()
        self._cache = _Cache()

    @property
    def tracks_coverage(self) -> bool:
        """Whether a building index can be promoted automatically (scene counts were given)."""
        return self._scene_counts is not None

    @property
    def layout(self) -> IndexLayout:
        """The index this configuration writes (resolved once, on first use)."""
        if self._layout is None:
            with self._lock:
                if self._layout is None:
                    source = self._layout_source
                    assert callable(source)
                    self._layout = source()
        return self._layout

    # -- the port ------------------------------------------------------------------------

    def upsert(self, documents: Sequence[SceneDocument]) -> dict[uuid.UUID, str]:
        """Write ``documents`` through the write alias (creating this configuration's index, or
        starting its build, on first use); returns the rejected ones, scene id -> reason.

        A version conflict is not a rejection: the index holds a document written later.
        Raises ``SearchIndexBusyError`` / ``RolledBackIndexError`` when this configuration may
        not write, ``TransientError`` when the cluster cannot be reached or the write alias
        vanished (nothing was written)."""
        if not documents:
            return {}
        layout = self.layout
        with transient("bulk write"):
            state = self._ensure_writable(layout)
            rejected = self._bulk(layout, documents)
            if state.phase == "building":
                self.promote_if_complete()
        return rejected

    def states(
        self, owner_id: uuid.UUID, scene_ids: Iterable[uuid.UUID] | None
    ) -> dict[uuid.UUID, RecordState]:
        """Fingerprint and input hash of the owner's documents in this configuration's index
        (the write target once it writes; nothing when it does not exist yet). Reads by the
        concrete name and never changes anything, so a dry run stays side-effect free."""
        index = self.layout.index
        owner = str(owner_id)
        with transient("read document states"):
            try:
                if scene_ids is None:
                    return scan_states(self.client, index, owner)
                return get_states(self.client, index, owner, [str(i) for i in scene_ids])
            except NotFoundError:
                return {}

    def generation(self) -> str | None:
        """``ports.IndexGeneration``: the uuid of this configuration's concrete index (the one
        ``states`` reads), None when it does not exist. An index deleted (``prune``, by hand)
        and created again has a new uuid, so the runner's scene digests taken under the old one
        no longer match and every document is assessed again. Raises ``TransientError`` when
        the cluster cannot be reached."""
        index = self.layout.index
        with transient("read index generation"):
            try:
                response = self.client.indices.get_settings(index=index, name="index.uuid")
            except NotFoundError:
                return None
        body: dict[str, Any] = response.get(index) or next(iter(response.values()), {})
        generation = body.get("settings", {}).get("index", {}).get("uuid")
        return str(generation) if generation else None

    def delete(self, owner_id: uuid.UUID, scene_ids: Iterable[uuid.UUID]) -> None:
        """Delete the owner's documents for ``scene_ids`` from the read and write indexes (and
        this configuration's), by an owner-filtered ``_delete_by_query``."""
        ids = list(scene_ids)
        if not ids:
            return
        with transient("delete documents"):
            state = self.aliases()
            targets = sorted({i for i in (state.read, state.write, self.layout.index) if i in state.indexes})
            if not targets:
                return
            # _delete_by_query only finds what a refresh made searchable: without this, a
            # document written in the last refresh interval (a racing reprocess) would survive.
            self.client.indices.refresh(index=",".join(targets), ignore_unavailable=True)
            self.client.delete_by_query(
                index=",".join(targets),
                body=delete_body(owner_id, ids),
                conflicts="proceed",
                refresh=True,
                ignore_unavailable=True,
            )
            if state.phase == "building" and state.write == self.layout.index:
                self.promote_if_complete()

    def search(self, owner_id: uuid.UUID, query: SearchQuery, k: int) -> builtins.list[SearchHit]:
        """The owner's ``k`` best scenes from the read alias. Vector sub-queries are only sent
        for model roles whose model built the read index (during a rebuild under new models a
        text query falls back to what is comparable, e.g. BM25); ``[]`` when nothing is."""
        with transient("search"):
            read_index, meta = self._read_meta()
            if read_index is None:
                return []
            models = meta.get("model_ids") or {}
            comparable = {
                role: models.get(role, mine) == mine for role, mine in self.layout.model_ids.items()
            }
            channels = (*TEXT_CHANNELS, *((OCR_CHANNEL,) if "ocr" in models else ()))
            plan = search_plan(owner_id, query, k, text=query.text, comparable=comparable, channels=channels)
            if plan is None:
                log.warning(
                    "search: nothing in the query is comparable with %s (built with %s, queries use %s)",
                    read_index,
                    models,
                    dict(self.layout.model_ids),
                )
                return []
            params: dict[str, Any] = {}
            if plan.weights:
                params["search_pipeline"] = self._pipeline(plan.weights)
            try:
                response = self.client.search(index=self.names.read_alias, body=plan.body, **params)
            except NotFoundError:
                return []
        person = query.person_id if plan.kind == "face" else None
        return [search_hit(hit, plan.kind, person, query) for hit in response["hits"]["hits"][: plan.size]]

    def ping(self) -> bool:
        """Whether the cluster answers (readiness probes); needs no layout, so no model."""
        return bool(self.client.ping())

    # -- aliases and lifecycle -----------------------------------------------------------

    def aliases(self) -> AliasState:
        """The concrete index behind each alias, and every scene index (one request)."""
        response = self.client.indices.get_alias(index=self.names.pattern)
        read = write = None
        fallback_write = None
        for index, body in response.items():
            aliases = body.get("aliases", {})
            if self.names.read_alias in aliases:
                read = index
            if self.names.write_alias in aliases:
                if aliases[self.names.write_alias].get("is_write_index", True):
                    write = index
                fallback_write = fallback_write or index
        indexes = tuple(sorted(i for i in response if self.names.is_scene_index(i)))
        return AliasState(read, write or fallback_write, indexes)

    def promote_if_complete(self) -> Coverage | None:
        """While this configuration's index is being built: if it covers every scene, move the
        read alias to it (one atomic ``_aliases`` call). Returns the coverage found, or None
        when there is nothing to promote (not building this index, or no scene counts)."""
        layout = self.layout
        state = self.aliases()
        if state.phase != "building" or state.write != layout.index or self._scene_counts is None:
            return None
        coverage = self.coverage(layout.index, layout.fingerprint)
        if not coverage.complete:
            return coverage
        if self.meta(layout.index).get("rolled_back_at"):
            raise RolledBackIndexError(f"index {layout.index} was rolled back; it is not promoted again")
        try:
            self.client.indices.update_aliases(
                body={"actions": move_alias_actions(self.names.read_alias, state.read, layout.index)}
            )
        except (NotFoundError, RequestError) as error:
            if self.aliases().read == layout.index:
                return coverage  # another worker promoted it a moment ago
            raise TransientError(f"promoting {layout.index} failed: {error}") from error
        indexed, scenes = coverage.totals
        log.info(
            "promoted %s: read alias %s moved from %s (%d documents for %d scenes)",
            layout.index,
            self.names.read_alias,
            state.read,
            indexed,
            scenes,
        )
        self.forget_read_meta()
        return coverage

    def coverage(self, index: str, fingerprint: str) -> Coverage:
        """Documents of ``fingerprint`` per owner in ``index`` against the database's scenes."""
        if self._scene_counts is None:
            raise InvalidRequestError("no scene counts: this index was built without a database")
        self.client.indices.refresh(index=index)
        indexed = self.owner_counts(index, {"term": {"fingerprint": fingerprint}})
        scenes = {str(owner): n for owner, n in self._scene_counts().items() if n}
        owners = sorted(set(indexed) | set(scenes))
        return Coverage(index, {uuid.UUID(o): (indexed.get(o, 0), scenes.get(o, 0)) for o in owners})

    def owner_counts(self, index: str, query: Mapping[str, Any] | None = None) -> dict[str, int]:
        """Documents per owner id in ``index`` (a composite aggregation, paged)."""
        counts: dict[str, int] = {}
        after: dict[str, Any] | None = None
        while True:
            composite: dict[str, Any] = {
                "size": 1000,
                "sources": [{"owner": {"terms": {"field": "owner_id"}}}],
            }
            if after:
                composite["after"] = after
            body = {
                "size": 0,
                "query": query or {"match_all": {}},
                "aggs": {"owners": {"composite": composite}},
            }
            result = self.client.search(index=index, body=body)["aggregations"]["owners"]
            counts.update({b["key"]["owner"]: int(b["doc_count"]) for b in result["buckets"]})
            after = result.get("after_key")
            if not result["buckets"] or not after:
                return counts

    def status(self) -> IndexStatus:
        """Aliases, every scene index (documents, creation time, spec and models from its
        ``_meta``, roles) and, while building, the coverage of the index being built."""
        return admin.index_status(self)

    def rollback(self) -> str:
        """Abandon a build, or move both aliases back to the previous index (``admin.rollback``);
        returns what was done."""
        return admin.rollback(self)

    def prune(self, *, dry_run: bool = False) -> builtins.list[str]:
        """Delete the scene indexes no alias points at; returns their names."""
        return admin.prune(self, dry_run=dry_run)

    # -- internals -----------------------------------------------------------------------

    def _ensure_writable(self, layout: IndexLayout) -> AliasState:
        """Make sure the write alias points at this configuration's index, creating the index and
        moving the alias when the state allows it (see the module docstring)."""
        for _ in range(3):
            state = self.aliases()
            own = layout.index
            if state.write == own:
                return state
            if state.write is not None and state.write != state.read:
                raise SearchIndexBusyError(
                    f"the write alias {self.names.write_alias} is on {state.write} (a build under "
                    f"another spec, reads on {state.read}); this worker's spec {layout.spec_version} "
                    f"writes {own}: run workers of one spec, or `scenedex index rollback` that build"
                )
            if self.meta(own).get("rolled_back_at"):
                raise RolledBackIndexError(
                    f"index {own} (spec {layout.spec_version}) was rolled back: deploy the settings "
                    f"behind {state.read}, or `scenedex index prune` it to rebuild from scratch"
                )
            self._create_index(layout)
            actions = move_alias_actions(self.names.write_alias, state.write, own, write=True)
            if state.read is None:
                actions.append({"add": {"index": own, "alias": self.names.read_alias}})
            try:
                self.client.indices.update_aliases(body={"actions": actions})
            except (NotFoundError, RequestError) as error:
                log.info("write alias moved concurrently (%s); reading the aliases again", error)
                continue
            log.info(
                "write alias %s now on %s (reads on %s)",
                self.names.write_alias,
                own,
                state.read or own,
            )
            return self.aliases()
        raise TransientError(
            f"could not point {self.names.write_alias} at {layout.index}: aliases keep moving"
        )

    def _create_index(self, layout: IndexLayout) -> None:
        """Put the template, then create the index with the same settings and mappings (the
        request body wins over any template another process put meanwhile); an index that
        already exists must carry this layout's fingerprint and vector sizes."""
        template = layout.template_body()
        self.client.indices.put_index_template(name=self.names.template, body=template)
        try:
            self.client.indices.create(index=layout.index, body=template["template"])
            log.info("created index %s (spec %s)", layout.index, layout.spec_version)
        except RequestError as error:
            if error.error != "resource_already_exists_exception":
                raise
        meta = self.meta(layout.index)
        expected = layout.meta()
        for key in ("fingerprint", "dimensions"):
            if meta.get(key) != expected[key]:
                raise PermanentError(
                    f"index {layout.index} has {key} {meta.get(key)}, this configuration needs "
                    f"{expected[key]}: `scenedex index prune` it (if no alias points at it) and retry"
                )

    def _bulk(self, layout: IndexLayout, documents: Sequence[SceneDocument]) -> dict[uuid.UUID, str]:
        version = self._next_version()
        actions = [bulk_action(self.names.write_alias, doc, version) for doc in documents]
        rejected: dict[uuid.UUID, str] = {}
        results = helpers.streaming_bulk(
            self.client,
            actions,
            chunk_size=500,
            raise_on_error=False,
            raise_on_exception=True,
            yield_ok=True,
            require_alias=True,
            **self._bulk_options,
        )
        for ok, item in results:
            (result,) = item.values()
            scene_id = uuid.UUID(result["_id"])
            if ok:
                if result.get("_index") != layout.index:
                    rejected[scene_id] = (
                        f"written to {result.get('_index')} instead of {layout.index}: the write "
                        "alias moved during the write (rollback?)"
                    )
                continue
            error = result.get("error") or {}
            kind = error.get("type", "") if isinstance(error, dict) else ""
            if result.get("status") == 409 and kind == "version_conflict_engine_exception":
                continue  # a document written later is already there
            if kind == "index_not_found_exception":
                raise TransientError(f"write alias {self.names.write_alias} missing: {reason(error)}")
            rejected[scene_id] = (
                f"search index rejected the document ({result.get('status')}): {reason(error)}"
            )
        return rejected

    def _next_version(self) -> int:
        with self._lock:
            version = max(self._clock() // 1000, self._cache.last_version + 1)
            self._cache.last_version = version
            return version

    def meta(self, index: str) -> dict[str, Any]:
        """The scenedex ``_meta`` of ``index`` ({} when it does not exist)."""
        try:
            mappings = self.client.indices.get_mapping(index=index)
        except NotFoundError:
            return {}
        return meta_of(mappings.get(index, next(iter(mappings.values()), {})))

    def _read_meta(self) -> tuple[str | None, Mapping[str, Any]]:
        """The index behind the read alias and its ``_meta``, cached for ``READ_META_TTL_S``."""
        now = time.monotonic()
        with self._lock:
            cached = self._cache.read_meta
        if cached is not None and now - cached[0] < READ_META_TTL_S:
            return cached[1], cached[2]
        try:
            mappings = self.client.indices.get_mapping(index=self.names.read_alias)
        except NotFoundError:
            mappings = {}
        index = next(iter(mappings), None)
        meta = meta_of(mappings[index]) if index else {}
        with self._lock:
            self._cache.read_meta = (now, index, meta)
        return index, meta

    def forget_read_meta(self) -> None:
        """Drop the cached read-index ``_meta`` (after moving the read alias)."""
        with self._lock:
            self._cache.read_meta = None

    def _pipeline(self, weights: Sequence[float]) -> str:
        pipeline_id = self.names.pipeline(weights)
        with self._lock:
            known = pipeline_id in self._cache.pipelines
        if not known:
            self.client.search_pipeline.put(id=pipeline_id, body=pipeline_body(weights))
            with self._lock:
                self._cache.pipelines.add(pipeline_id)
        return pipeline_id
