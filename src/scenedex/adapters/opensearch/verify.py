"""``scenedex index verify``: the database against this configuration's index, per owner.

- missing: a scene with no document;
- stale: a document whose fingerprint or input hash is not what the spec expects for the
  scene now (the same test the runner plans with);
- extra: a document whose scene is not in the database (or belongs to another owner there).

Repair deletes the extra documents (owner-filtered) and re-sends the missing and stale ones
through the runner (``ReprocessRunner.run_scenes`` over the videos concerned): it recomputes
whatever upstream record is not current and rebuilds exactly the documents that are not, with
the runner's own document builder, so a repaired document is the one a reprocess writes.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from scenedex.adapters.opensearch.index import OpenSearchIndex
from scenedex.domain.freshness import ExpectedStates, staleness
from scenedex.domain.ports import UnitOfWorkFactory
from scenedex.domain.progress import ReprocessProgress
from scenedex.domain.reprocess import ReprocessRunner
from scenedex.domain.spec import ReprocessSpec

SAMPLE = 20
"""Ids listed per kind and owner in a report (the counts are complete)."""


@dataclass
class OwnerReport:
    owner_id: uuid.UUID
    scenes: int = 0
    documents: int = 0
    missing: list[uuid.UUID] = field(default_factory=list)
    stale: list[uuid.UUID] = field(default_factory=list)
    extra: list[uuid.UUID] = field(default_factory=list)
    videos: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict, repr=False)
    """Video of every missing or stale scene (what a repair reprocesses)."""

    @property
    def ok(self) -> bool:
        return not (self.missing or self.stale or self.extra)

    def to_dict(self) -> dict[str, Any]:
        return {
            "owner_id": str(self.owner_id),
            "scenes": self.scenes,
            "documents": self.documents,
            **{
                kind: {"count": len(ids), "sample": [str(i) for i in ids[:SAMPLE]]}
                for kind, ids in (("missing", self.missing), ("stale", self.stale), ("extra", self.extra))
            },
        }


def verify_index(
    index: OpenSearchIndex,
    uow_factory: UnitOfWorkFactory,
    spec: ReprocessSpec,
    owner_ids: Sequence[uuid.UUID] | None = None,
) -> list[OwnerReport]:
    """One report per owner (``owner_ids``, or every owner of the database or the index)."""
    if owner_ids is None:
        with uow_factory() as uow:
            known = set(uow.list_owner_ids())
        in_index = (
            index.owner_counts(index.layout.index) if index.layout.index in index.aliases().indexes else {}
        )
        owner_ids = sorted(known | {uuid.UUID(o) for o in in_index})
    return [_verify_owner(index, uow_factory, spec, owner) for owner in owner_ids]


def _verify_owner(
    index: OpenSearchIndex, uow_factory: UnitOfWorkFactory, spec: ReprocessSpec, owner_id: uuid.UUID
) -> OwnerReport:
    with uow_factory() as uow:
        scenes = uow.scenes.list_for_videos(owner_id, None)
        expected = ExpectedStates(
            spec, uow.persons.list_photos(owner_id), [p.id for p in uow.persons.list(owner_id)]
        )
    stored = index.states(owner_id, None)
    report = OwnerReport(owner_id, scenes=len(scenes), documents=len(stored))
    for scene in scenes:
        state = stored.get(scene.id)
        if state is None:
            report.missing.append(scene.id)
        elif staleness(state, expected.document(scene)) is not None:
            report.stale.append(scene.id)
        else:
            continue
        report.videos[scene.id] = scene.video_id
    scene_ids = {scene.id for scene in scenes}
    report.extra = sorted(i for i in stored if i not in scene_ids)
    return report


def repair_index(
    index: OpenSearchIndex, runner: ReprocessRunner, reports: Sequence[OwnerReport]
) -> ReprocessProgress:
    """Delete extra documents and re-send missing and stale ones through ``runner`` (see the
    module docstring); returns the runner's progress (its errors name what still failed)."""
    progress = ReprocessProgress(runner.spec.version)
    for report in reports:
        if report.extra:
            index.delete(report.owner_id, report.extra)
        video_ids = sorted(set(report.videos.values()))
        if video_ids:
            # Their digest may say "current" (a document deleted by hand): assess them again.
            runner.forget_current(report.owner_id, sorted(report.videos))
            runner.run_scenes(report.owner_id, video_ids, progress)
    return progress
