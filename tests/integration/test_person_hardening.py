"""The low-severity person items of issue 25, each against the real thing:

- a person deleted while photos are added to it leaves no blob (threads on real Postgres, the
  folder blob store; the photo insert is slowed to hold the race open);
- names refuse bidi override and isolate characters, in the API's schema and in the service's
  check alike (every BMP character is tried on both);
- a cap on photos per person (``SCENEDEX_API__MAX_PHOTOS_PER_PERSON``): 422 over HTTP, exit 2 on
  the CLI, nothing stored;
- an expected ``refresh_owner`` retry (the owner's job still runs) is logged at INFO without a
  traceback, not as an error.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydantic
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from scenedex.adapters.db import tables as t
from scenedex.adapters.db.repositories import SqlPersonRepository, SqlUnitOfWorkFactory
from scenedex.adapters.storage import FsspecBlobStore
from scenedex.api import create_app
from scenedex.api.routes.persons import RenameBody
from scenedex.domain.errors import InvalidRequestError, NotFoundError
from scenedex.domain.jobs import JobTrigger
from scenedex.domain.request import ReprocessRequest, ReprocessScope
from scenedex.scripts.cli import app as cli_app
from scenedex.services.persons import BIDI_CONTROLS, Persons, PhotoUpload, clean_person_name
from tests.conftest import truncate_all
from tests.fakes import face_png
from tests.integration.test_api import OWNER_A, api_settings, bearer, make_token
from tests.job_harness import OWNER, Harness, library
from tests.problems import problem

pytestmark = pytest.mark.integration

SLOW_INSERT_S = 0.05
"""How long the slowed photo insert keeps its transaction open (seconds)."""


def photo(salt: str) -> PhotoUpload:
    return PhotoUpload(f"{salt}.png", face_png("ann", salt=salt))


def blobs_of(root: Path, owner: uuid.UUID, person: uuid.UUID) -> list[Path]:
    """The files under the person's prefix (``owners/<owner>/persons/<person>/``)."""
    folder = root / "owners" / str(owner) / "persons" / str(person)
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


@pytest.fixture
def blob_root(tmp_path: Path) -> Path:
    root = tmp_path / "blobs"
    root.mkdir()
    return root


@pytest.fixture
def persons(postgres_engine: sa.Engine, blob_root: Path) -> Iterator[Persons]:
    truncate_all(postgres_engine)
    yield Persons(
        uow_factory=SqlUnitOfWorkFactory(postgres_engine),  # type: ignore[arg-type]
        blobs=FsspecBlobStore(blob_root.as_uri()),
        max_image_bytes=1 << 20,
        max_image_pixels=1 << 20,
        max_photos_per_person=32,
    )
    truncate_all(postgres_engine)


# -- (a) delete racing add-photos ---------------------------------------------------------------


def test_a_person_deleted_while_photos_are_added_leaves_no_blob(
    persons: Persons, postgres_engine: sa.Engine, blob_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    insert = SqlPersonRepository.add_photo

    def slow_insert(self: SqlPersonRepository, photo_row: Any) -> None:
        insert(self, photo_row)
        time.sleep(SLOW_INSERT_S)  # the adding transaction stays open with its rows inserted

    monkeypatch.setattr(SqlPersonRepository, "add_photo", slow_insert)
    outcomes: Counter[str] = Counter()
    for round_ in range(16):
        person = persons.create(OWNER, f"ann {round_}", [photo(f"r{round_}")]).person
        start = threading.Barrier(2)
        errors: list[BaseException] = []

        def add(
            person_id: uuid.UUID = person.id, n: int = round_, start: Any = start, errors: Any = errors
        ) -> None:
            start.wait()
            try:
                persons.add_photos(OWNER, person_id, [photo(f"a{n}"), photo(f"b{n}")])
                outcomes["added, then deleted"] += 1
            except NotFoundError:
                outcomes["deleted first"] += 1
            except BaseException as error:  # an IntegrityError before the lock
                errors.append(error)

        def delete(
            person_id: uuid.UUID = person.id, n: int = round_, start: Any = start, errors: Any = errors
        ) -> None:
            start.wait()
            time.sleep((n % 8) * 0.015)  # 0 to 105 ms after the add began: every interleaving
            try:
                persons.delete(OWNER, person_id)
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=add), threading.Thread(target=delete)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert not errors, errors
        assert blobs_of(blob_root, OWNER, person.id) == [], f"round {round_}: orphan blobs"
        with postgres_engine.connect() as connection:
            photos = t.person_photos.c
            left = connection.scalar(sa.select(sa.func.count()).where(photos.person_id == person.id))
        assert left == 0
    assert sum(outcomes.values()) == 16, outcomes


# -- (b) bidi controls --------------------------------------------------------------------------


def test_names_refuse_bidi_controls_and_the_schema_agrees_with_the_check_on_every_character() -> None:
    assert frozenset(map(chr, [*range(0x202A, 0x202F), *range(0x2066, 0x206A)])) == BIDI_CONTROLS
    for char in sorted(BIDI_CONTROLS):
        with pytest.raises(InvalidRequestError, match="bidi"):
            clean_person_name(f"Ann{char}gnol")
        with pytest.raises(pydantic.ValidationError):
            RenameBody(name=f"Ann{char}gnol")
    disagreements = []
    for code in (c for c in range(0x10000) if not 0xD800 <= c <= 0xDFFF):
        name = f"a{chr(code)}b"
        try:
            clean_person_name(name)
            service = True
        except InvalidRequestError:
            service = False
        try:
            RenameBody(name=name)
            schema = True
        except pydantic.ValidationError:
            schema = False
        if service != schema:
            disagreements.append(f"U+{code:04X}")
    assert disagreements == []
    for fine in ("Zoë Ölçer", "אבי כהן", "محمد", "👩\u200d🔬 Ada", "A\u200eB"):  # ZWJ emoji, a LRM mark
        assert clean_person_name(fine) == fine and RenameBody(name=fine).name == fine


# -- (c) photos per person ----------------------------------------------------------------------


def test_photos_per_person_are_capped_over_http(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    services = harness.runtime.services
    assert services is not None
    capped = services.settings.model_copy(
        update={"api": services.settings.api.model_copy(update={"max_photos_per_person": 3})}
    )
    monkeypatch.setattr(services, "settings", capped)
    headers = bearer(make_token(OWNER_A, ()))
    pngs = [("photos", (f"p{i}.png", face_png("cap", salt=f"c{i}"), "image/png")) for i in range(4)]
    with TestClient(create_app(api_settings(harness), runtime=harness.runtime)) as client:
        over = client.post("/v1/persons", data={"name": "cap"}, files=pngs, headers=headers)
        assert over.status_code == 422 and "MAX_PHOTOS_PER_PERSON" in over.json()["detail"], over.text
        created = client.post("/v1/persons", data={"name": "cap"}, files=pngs[:2], headers=headers)
        assert created.status_code == 201, created.text
        person_id = created.json()["person_id"]
        third = client.post(f"/v1/persons/{person_id}/photos", files=pngs[2:3], headers=headers)
        assert third.status_code == 201 and len(third.json()["photos"]) == 3
        fourth = client.post(f"/v1/persons/{person_id}/photos", files=pngs[3:], headers=headers)
        assert fourth.status_code == 422, fourth.text
        assert "has 3 photos" in problem(fourth, 422, "invalid_request")["detail"]
        assert len(client.get(f"/v1/persons/{person_id}", headers=headers).json()["photos"]) == 3
        bidi = client.patch(f"/v1/persons/{person_id}", json={"name": "evil\u202egnp.exe"}, headers=headers)
        assert bidi.status_code == 422
    stored = [uri for uri in harness.world.blobs.blobs if f"/persons/{person_id}/" in uri]
    assert len(stored) == 3  # the refused photo was not kept


def test_the_cli_refuses_more_photos_than_the_cap_as_a_usage_error(tmp_path: Path) -> None:
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"p{i}.png")
        paths[-1].write_bytes(face_png("cli", salt=f"p{i}"))
    env = {
        "SCENEDEX_API__MAX_PHOTOS_PER_PERSON": "2",
        "SCENEDEX_DATABASE_URL": f"sqlite:///{tmp_path / 'unused.db'}",
        "SCENEDEX_STORAGE_URL": (tmp_path / "blobs").as_uri(),
    }
    args = ["person", "add", *map(str, paths), "--owner-id", str(OWNER), "--name", "cli"]
    result = CliRunner().invoke(cli_app, args, env=env)
    assert result.exit_code == 2, result.output
    assert "MAX_PHOTOS_PER_PERSON" in result.output and not (tmp_path / "blobs").exists()


# -- (d) refresh_owner's expected retries -------------------------------------------------------


def retried(caplog: pytest.LogCaptureFixture) -> bool:
    return any("Retrying message" in r.getMessage() for r in caplog.records)


def test_a_refresh_owner_retry_is_logged_at_info_without_a_traceback(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    from scenedex.tasks.actors import refresh_owner

    library(harness.world, videos=1)
    job = harness.store.create(
        ReprocessRequest(ReprocessScope.OWNER, owner_id=OWNER), harness.spec_version, JobTrigger.API
    )
    harness.store.start(job.id)  # the owner's job runs: the follow-up has to wait
    caplog.set_level(logging.INFO)
    harness.start_worker()
    try:
        refresh_owner.send(str(OWNER), JobTrigger.API.value)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not retried(caplog):
            time.sleep(0.05)
    finally:
        harness.stop_worker()
    retrying = [r for r in caplog.records if "Retrying message" in r.message]
    assert retrying and retrying[0].levelno == logging.INFO
    waiting = [r for r in caplog.records if "still has a running job" in r.getMessage()]
    assert waiting and all(r.levelno == logging.INFO for r in waiting)
    loud = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert loud == [], [(r.levelname, r.getMessage()) for r in loud]
