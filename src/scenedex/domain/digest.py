"""The per-scene digest that makes a no-op reprocess one SQL pass instead of a record-by-record
assessment.

Every expected state of a scene's records (``freshness.ExpectedStates.scene``) is a function of
an owner-wide *context* and of the scene's own source (texts, keyframe hash, video, start, end):
the context is the spec's scene-step fingerprints and text channels, the owner's person set and
the search index's generation (``ports.IndexGeneration``: a re-created index has lost every
document). A scene row's ``current_under`` holds the context under which every record of the
scene, search document included, was last *read back* equal to its expected state.

- It is set only by ``stamp_current``: the row is stamped first (if it is still the version the
  run read: same ``updated_at``), then, in the same transaction, the scene's stored states are
  read back and the stamp removed again from any scene with a record not current. A concurrent
  writer of those records clears the stamp in its own transaction before writing (row lock), so
  a stamp never outlives a change it did not see.
- It is cleared by every write of the scene's source (``set_texts``; new rows start without it),
  by every batch of the runner before it writes the scene's records, and before a document of a
  live scene is deleted (video deletion, ``ReprocessRunner.forget_current``).

The runner asks SQL for the scenes whose digest is not the owner's current context and assesses
only those exactly; the others are counted as current, item by item (``items_per_scene``).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from scenedex.domain.freshness import ExpectedStates, SceneStates
from scenedex.domain.model import RecordState, Scene, content_hash
from scenedex.domain.ports import IndexGeneration, RecordKey, SearchIndex, UnitOfWorkFactory
from scenedex.domain.spec import EmbeddingStepType

Step = EmbeddingStepType

DIGEST_VERSION = "scene-digest-1"
"""Part of every context: changing what a context covers means a new version here."""

STAMP_CHUNK = 500
"""Scenes stamped (and read back) per unit of work, up to ``WIDE_STAMP`` scenes."""

WIDE_STAMP = 2000
"""Above this many scenes, they are stamped in one unit of work and read back with owner-wide
queries (one per record table and one of the index), as the runner plans large scopes."""


@dataclass
class SeenStates:
    """The stored states a run read for its scenes: per scene record step, and the documents."""

    records: Mapping[Step, Mapping[RecordKey, RecordState]] = field(default_factory=dict)
    documents: Mapping[uuid.UUID, RecordState] = field(default_factory=dict)


def index_generation(index: SearchIndex) -> str:
    """The index's generation (``IndexGeneration``), ``"absent"`` when its index does not exist,
    ``""`` for an index without one (the table-backed index: documents only go with their
    scenes, or through ``delete`` calls that clear the digest first)."""
    if isinstance(index, IndexGeneration):
        generation = index.generation()
        return "absent" if generation is None else f"index:{generation}"
    return ""


def scene_context(expected: ExpectedStates, generation: str) -> str:
    """The owner-wide context of every scene's expected states (a 64-hex digest): the spec's
    scene-step fingerprints, its text channels, the owner's person set, ``generation`` and,
    when the owner has any, its face decisions."""
    spec = expected.spec
    parts: list[object] = [
        DIGEST_VERSION,
        [(step.value, spec.fingerprint(step)) for step in spec.scene_steps],
        list(spec.inputs.text_channels),
        expected.person_set,
        generation,
    ]
    if expected.decisions:  # a face decision (a rejection) can change one scene's state
        parts.append(expected.decisions.digest)
    return content_hash(*parts)


def items_per_scene(expected: ExpectedStates) -> dict[Step, int]:
    """Items of each scene step per scene: one per text channel, one CLIP, one faces, one
    search document (and one OCR record when the spec has SCENE_OCR; no CLIP or text item when
    the spec has no such step)."""
    items = {step: 1 for step in expected.spec.scene_steps}
    if Step.SCENE_TEXT_EMBEDDINGS in items:  # (none: SCENEDEX_EMBEDDER__TEXT=off)
        items[Step.SCENE_TEXT_EMBEDDINGS] = len(expected.spec.channels)
    return items


def all_current(
    scene_id: uuid.UUID,
    states: SceneStates,
    stored: Mapping[Step, Mapping[RecordKey, RecordState]],
    documents: Mapping[uuid.UUID, RecordState],
) -> bool:
    """Whether every stored state of the scene equals its expected one (``states``)."""
    texts = stored.get(Step.SCENE_TEXT_EMBEDDINGS, {})
    return (
        all(texts.get((scene_id, channel)) == state for channel, state in states.texts.items())
        and (states.ocr is None or stored[Step.SCENE_OCR].get((scene_id, "")) == states.ocr)
        and (states.clip is None or stored[Step.SCENE_CLIP_EMBEDDINGS].get((scene_id, "")) == states.clip)
        and (states.faces is None or stored[Step.SCENE_PERSON_EMBEDDINGS].get((scene_id, "")) == states.faces)
        and documents.get(scene_id) == states.document
    )


def unchanged(
    scene_id: uuid.UUID,
    channels: Sequence[str],
    now: SeenStates,
    before: SeenStates,
) -> bool:
    """Whether every state of the scene read ``now`` is the one read ``before`` (and exists)."""
    keys = [(Step.SCENE_TEXT_EMBEDDINGS, c) for c in channels if Step.SCENE_TEXT_EMBEDDINGS in now.records]
    keys += [
        (step, "")
        for step in (Step.SCENE_OCR, Step.SCENE_CLIP_EMBEDDINGS, Step.SCENE_PERSON_EMBEDDINGS)
        if step in now.records
    ]
    return (
        all(
            (state := now.records[step].get((scene_id, key))) is not None
            and state == before.records[step].get((scene_id, key))
            for step, key in keys
        )
        and (document := now.documents.get(scene_id)) is not None
        and document == before.documents.get(scene_id)
    )


def stamp_current(
    uow_factory: UnitOfWorkFactory,
    index: SearchIndex,
    owner_id: uuid.UUID,
    scenes: Sequence[Scene],
    expected: ExpectedStates,
    seen: SeenStates | None = None,
) -> int:
    """Stamp the digest of those of ``scenes`` (as read by this run) whose every record is
    current now, read back after stamping (see the module docstring); returns how many are
    stamped. ``seen``: the states the run read when it found every record of ``scenes``
    current (a scene then stays stamped if its states read back are those, no hash computed);
    without it the states read back are compared with the expected ones.

    One unit of work per ``STAMP_CHUNK`` scenes (1 update, 3 record reads and 1 index read by
    ids), or one for all above ``WIDE_STAMP`` (owner-wide reads). Infrastructure errors
    propagate (nothing half-stamped is committed)."""
    if not scenes:
        return 0
    context = scene_context(expected, index_generation(index))
    wide = len(scenes) > WIDE_STAMP
    size = len(scenes) if wide else STAMP_CHUNK
    channels = expected.spec.channels
    total = 0
    for start in range(0, len(scenes), size):
        chunk = scenes[start : start + size]
        with uow_factory() as uow:
            stamped = uow.scenes.mark_current(owner_id, chunk, context)
            ids = [s.id for s in chunk if s.id in stamped]
            if ids:
                read = None if wide else ids
                now = SeenStates(
                    {step: uow.records.states(step, owner_id, read) for step in expected.spec.record_steps},
                    index.states(owner_id, read),
                )
                behind = [
                    s.id
                    for s in chunk
                    if s.id in stamped
                    and not (
                        unchanged(s.id, channels, now, seen)
                        if seen is not None
                        else all_current(s.id, expected.scene(s), now.records, now.documents)
                    )
                ]
                uow.scenes.clear_current(owner_id, behind)
                total += len(ids) - len(behind)
            uow.commit()
    return total
