"""SQL repositories, upserts and migrations on real SQLite and Postgres."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from scenedex.adapters.db.migrate import current_revision, head_revision
from scenedex.adapters.db.repositories import SqlUnitOfWorkFactory
from scenedex.adapters.db.tables import metadata
from scenedex.domain.model import EmbeddingRecord, Person, PersonPhoto, Scene, Video, new_id
from scenedex.domain.spec import EmbeddingStepType as Step

A, B = uuid.uuid4(), uuid.uuid4()


def seed(uow_factory: SqlUnitOfWorkFactory, owner: uuid.UUID) -> Scene:
    video = Video(new_id(), owner, "t", "file:///v.mp4", 3.0)
    scene = Scene(new_id(), video.id, owner, 0, 0.0, 1.5, "file:///k.jpg", "0" * 64, transcript="hello")
    with uow_factory() as uow:
        uow.videos.add(video)
        uow.scenes.add_many([scene])
        uow.commit()
    return scene


def record(
    owner: uuid.UUID, subject: uuid.UUID, vector: np.ndarray | None, input_hash: str = "h1"
) -> EmbeddingRecord:
    return EmbeddingRecord(owner, subject, "", vector, "m", "v", "fp", input_hash, {"n": 1})


def test_migrations_match_the_table_definitions(sql_engine: sa.Engine) -> None:
    assert current_revision(sql_engine) == head_revision()
    with sql_engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), metadata) == []


def test_reads_are_owner_scoped(sql_engine: sa.Engine) -> None:
    uow_factory = SqlUnitOfWorkFactory(sql_engine)
    scene = seed(uow_factory, A)
    with uow_factory() as uow:
        assert uow.videos.get(A, scene.video_id) is not None
        assert uow.videos.get(B, scene.video_id) is None
        assert uow.videos.list(B) == []
        assert uow.scenes.list_for_video(B, scene.video_id) == []
        assert uow.scenes.list_for_video(A, scene.video_id)[0].transcript == "hello"
        assert uow.videos.owner_of(scene.video_id) == A
        assert uow.list_owner_ids() == [A]


def test_record_upsert_is_idempotent_and_round_trips_float32(sql_engine: sa.Engine) -> None:
    uow_factory = SqlUnitOfWorkFactory(sql_engine)
    scene = seed(uow_factory, A)
    vector = np.linspace(-1, 1, 512, dtype=np.float32)
    faces = np.ones((3, 128), dtype=np.float32)
    for _ in range(2):  # a redelivered write changes nothing
        with uow_factory() as uow:
            uow.records.upsert(Step.SCENE_CLIP_EMBEDDINGS, [record(A, scene.id, vector)])
            uow.records.upsert(Step.SCENE_PERSON_EMBEDDINGS, [record(A, scene.id, faces)])
            uow.commit()
    with uow_factory() as uow:
        (stored,) = uow.records.get(Step.SCENE_CLIP_EMBEDDINGS, A, [scene.id]).values()
        (stored_faces,) = uow.records.get(Step.SCENE_PERSON_EMBEDDINGS, A, [scene.id]).values()
        assert uow.records.get(Step.SCENE_CLIP_EMBEDDINGS, B, [scene.id]) == {}
    assert stored.vector.dtype == np.float32 and np.array_equal(stored.vector, vector)
    assert stored_faces.vector.shape == (3, 128)
    with sql_engine.connect() as connection:
        count = connection.execute(sa.text("select count(*) from scene_clip_embeddings")).scalar()
    assert count == 1
    with uow_factory() as uow:  # an update replaces in place
        uow.records.upsert(Step.SCENE_CLIP_EMBEDDINGS, [record(A, scene.id, None, input_hash="h2")])
        uow.commit()
        state = uow.records.states(Step.SCENE_CLIP_EMBEDDINGS, A, [scene.id])
    assert state[(scene.id, "")].input_hash == "h2"


def test_database_refuses_a_record_of_another_owners_scene(sql_engine: sa.Engine) -> None:
    uow_factory = SqlUnitOfWorkFactory(sql_engine)
    scene = seed(uow_factory, A)
    with uow_factory() as uow, pytest.raises(sa.exc.IntegrityError):
        uow.records.upsert(Step.SCENE_CLIP_EMBEDDINGS, [record(B, scene.id, np.ones(4, np.float32))])
        uow.session.flush()


def test_database_refuses_a_scene_in_another_owners_video(sql_engine: sa.Engine) -> None:
    uow_factory = SqlUnitOfWorkFactory(sql_engine)
    scene = seed(uow_factory, A)
    intruder = Scene(new_id(), scene.video_id, B, 1, 1.5, 3.0, "file:///x.jpg", "0" * 64)
    with uow_factory() as uow, pytest.raises(sa.exc.IntegrityError):
        uow.scenes.add_many([intruder])
        uow.session.flush()


def test_photo_status_update_is_owner_scoped(sql_engine: sa.Engine) -> None:
    from scenedex.domain.model import PhotoStatus

    uow_factory = SqlUnitOfWorkFactory(sql_engine)
    person = Person(new_id(), A, "alice")
    photo = PersonPhoto(new_id(), person.id, A, "file:///p.png", "0" * 64)
    with uow_factory() as uow:
        uow.persons.add(person)
        uow.persons.add_photo(photo)
        uow.persons.set_photo_status(B, photo.id, PhotoStatus.FAILED, "not yours")
        uow.commit()
    with uow_factory() as uow:
        (stored,) = uow.persons.list_photos(A)
        assert stored.status is PhotoStatus.PENDING
        assert uow.persons.list_photos(B) == [] and uow.persons.get(B, person.id) is None
