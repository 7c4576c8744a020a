"""Face decisions and suggested persons in SQL (``tables.face_decisions``, ``face_clusterings``,
``face_clusters``): the ``FaceDecisionRepository`` and ``FaceClusterRepository`` ports.

Every statement is filtered by the owner; a suggestion's faces are stored as JSON (ids, times,
boxes) with their descriptors as one ``(size, 128)`` float32 blob, so a page of suggestions is
one query.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.orm import Session

from scenedex.adapters.db import tables as t
from scenedex.adapters.db.engine import upsert
from scenedex.adapters.db.job_events import person_changed
from scenedex.adapters.db.pages import after as keyset_after
from scenedex.domain.face_clusters import ClusteringState, FaceCluster, SuggestedPerson, UnmatchedFace
from scenedex.domain.face_decisions import DecisionKind, FaceDecision


def _floats(data: bytes, shape: tuple[int, ...]) -> np.ndarray:
    return np.frombuffer(data, dtype="<f4").reshape(shape).astype(np.float32)


class SqlFaceDecisionRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    def list(self, owner_id: uuid.UUID) -> list[FaceDecision]:
        table = t.face_decisions
        rows = self._session.execute(
            sa.select(table).where(table.c.owner_id == owner_id).order_by(table.c.created_at, table.c.id)
        ).all()
        return [
            FaceDecision(
                id=row.id,
                owner_id=row.owner_id,
                kind=DecisionKind(row.kind),
                scene_id=row.scene_id,
                person_id=row.person_id,
                group_id=row.group_id,
                descriptor=_floats(row.descriptor, (128,)),
                first_s=row.first_s,
                last_s=row.last_s,
                bbox=(int(row.bbox[0]), int(row.bbox[1]), int(row.bbox[2]), int(row.bbox[3])),
                created_at=row.created_at,
            )
            for row in rows
        ]

    def add_many(self, decisions: Sequence[FaceDecision]) -> None:
        rows = [
            {
                "id": d.id,
                "owner_id": d.owner_id,
                "kind": d.kind.value,
                "scene_id": d.scene_id,
                "person_id": d.person_id,
                "group_id": d.group_id,
                "descriptor": np.asarray(d.descriptor, dtype="<f4").reshape(128).tobytes(),
                "first_s": float(d.first_s),
                "last_s": float(d.last_s),
                "bbox": [int(v) for v in d.bbox],
                "created_at": d.created_at,
            }
            for d in decisions
        ]
        upsert(self._session, t.face_decisions, rows, keep_on_update=("created_at",))
        for owner_id, person_id in {(d.owner_id, d.person_id) for d in decisions if d.person_id is not None}:
            person_changed(self._session, owner_id, person_id)  # its matching changes: not searchable yet

    def delete(self, owner_id: uuid.UUID, decision_ids: Iterable[uuid.UUID]) -> int:
        ids = list(decision_ids)
        if not ids:
            return 0
        table = t.face_decisions
        result = self._session.execute(
            sa.delete(table).where(table.c.owner_id == owner_id, table.c.id.in_(ids))
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


class SqlFaceClusterRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    def state(self, owner_id: uuid.UUID) -> ClusteringState | None:
        table = t.face_clusterings
        row = self._session.execute(sa.select(table).where(table.c.owner_id == owner_id)).first()
        if row is None:
            return None
        return ClusteringState(
            owner_id=row.owner_id,
            fingerprint=row.fingerprint,
            input_hash=row.input_hash,
            settings_id=row.settings_id,
            splits_hash=row.splits_hash,
            noise=tuple(row.noise),
            waiting=tuple(row.waiting),
            full=row.full,
            faces=row.faces,
            computed_at=row.computed_at,
        )

    def replace(
        self, state: ClusteringState, suggestions: Sequence[SuggestedPerson], unchanged: Iterable[str] = ()
    ) -> None:
        owner_id = state.owner_id
        clusters = t.face_clusters
        # delete what is not in the new set, then upsert: two workers replacing the same owner's
        # suggestions at once both succeed (the last commit wins) instead of one failing on a key
        self._session.execute(
            sa.delete(clusters).where(
                clusters.c.owner_id == owner_id,
                clusters.c.cluster_id.not_in([s.cluster_id for s in suggestions]),
            )
        )
        upsert(
            self._session,
            t.face_clusterings,
            [
                {
                    "owner_id": owner_id,
                    "fingerprint": state.fingerprint,
                    "input_hash": state.input_hash,
                    "settings_id": state.settings_id,
                    "splits_hash": state.splits_hash,
                    "noise": list(state.noise),
                    "waiting": list(state.waiting),
                    "full": state.full,
                    "faces": state.faces,
                    "computed_at": state.computed_at,
                }
            ],
            keep_on_update=(),
        )
        kept = set(unchanged)
        rows = [self._cluster_row(owner_id, s, state) for s in suggestions if s.cluster_id not in kept]
        upsert(self._session, clusters, rows, keep_on_update=())

    @staticmethod
    def _cluster_row(
        owner_id: uuid.UUID, suggestion: SuggestedPerson, state: ClusteringState
    ) -> dict[str, Any]:
        if suggestion.cluster.owner_id != owner_id:
            raise ValueError("a suggestion of another owner")
        return {
            "owner_id": owner_id,
            "cluster_id": suggestion.cluster_id,
            "size": suggestion.size,
            "split": suggestion.split,
            "representative": suggestion.cluster.representative,
            "members": [
                {
                    "face_id": m.face_id,
                    "scene_id": str(m.scene_id),
                    "video_id": str(m.video_id),
                    "first_s": m.first_s,
                    "last_s": m.last_s,
                    "best_s": m.best_s,
                    "bbox": [int(v) for v in m.bbox],
                }
                for m in suggestion.members
            ],
            "descriptors": np.stack([np.asarray(m.descriptor, "<f4") for m in suggestion.members]).tobytes(),
            "centroid": np.asarray(suggestion.cluster.centroid, "<f4").tobytes(),
            "thumbnail": suggestion.thumbnail,
            "computed_at": state.computed_at,
        }

    def page(
        self, owner_id: uuid.UUID, limit: int, offset: int, after: tuple[int, str] | None = None
    ) -> tuple[list[SuggestedPerson], int]:
        table = t.face_clusters
        total = self._session.scalar(
            sa.select(sa.func.count()).select_from(table).where(table.c.owner_id == owner_id)
        )
        order = [(table.c.size, True), (table.c.cluster_id, False)]
        query = keyset_after(sa.select(table).where(table.c.owner_id == owner_id), order, after, limit)
        rows = self._session.execute(query.offset(offset)).all()
        return [self._suggestion(row) for row in rows], int(total or 0)

    def get(self, owner_id: uuid.UUID, cluster_id: str) -> SuggestedPerson | None:
        table = t.face_clusters
        row = self._session.execute(
            sa.select(table).where(table.c.owner_id == owner_id, table.c.cluster_id == cluster_id)
        ).first()
        return None if row is None else self._suggestion(row)

    def delete(self, owner_id: uuid.UUID, cluster_id: str) -> bool:
        table = t.face_clusters
        result = self._session.execute(
            sa.delete(table).where(table.c.owner_id == owner_id, table.c.cluster_id == cluster_id)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def list(self, owner_id: uuid.UUID) -> list[SuggestedPerson]:
        table = t.face_clusters
        rows = self._session.execute(
            sa.select(table)
            .where(table.c.owner_id == owner_id)
            .order_by(table.c.size.desc(), table.c.cluster_id)
        ).all()
        return [self._suggestion(row) for row in rows]

    @staticmethod
    def _suggestion(row: sa.Row[Any]) -> SuggestedPerson:
        descriptors = _floats(row.descriptors, (row.size, 128))
        members = tuple(
            UnmatchedFace(
                face_id=m["face_id"],
                owner_id=row.owner_id,
                scene_id=uuid.UUID(m["scene_id"]),
                video_id=uuid.UUID(m["video_id"]),
                first_s=float(m["first_s"]),
                last_s=float(m["last_s"]),
                bbox=(int(m["bbox"][0]), int(m["bbox"][1]), int(m["bbox"][2]), int(m["bbox"][3])),
                descriptor=descriptors[i],
                best_s=None if m.get("best_s") is None else float(m["best_s"]),
            )
            for i, m in enumerate(row.members)
        )
        cluster = FaceCluster(
            cluster_id=row.cluster_id,
            owner_id=row.owner_id,
            face_ids=tuple(m.face_id for m in members),
            scene_ids=tuple(sorted({m.scene_id for m in members}, key=str)),
            representative=row.representative,
            centroid=_floats(row.centroid, (128,)),
        )
        return SuggestedPerson(cluster, members, row.thumbnail, row.split)
