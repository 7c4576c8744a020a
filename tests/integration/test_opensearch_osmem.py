"""The OpenSearch adapter's write path against a real HTTP server: osmem-server, an in-memory
OpenSearch-compatible server (index templates, aliases, bulk, external versioning, BM25,
delete_by_query; no kNN, so search is tested in ``test_opensearch_cluster.py``)."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import numpy as np
import pytest
from opensearchpy import helpers
from typer.testing import CliRunner

from scenedex.adapters.opensearch import (
    OpenSearchIndex,
    RolledBackIndexError,
    SearchIndexBusyError,
    make_client,
)
from scenedex.adapters.opensearch.layout import PERSON_SOURCE_FIELDS, bulk_action
from scenedex.adapters.opensearch.queries import search_hit
from scenedex.adapters.opensearch.verify import repair_index, verify_index
from scenedex.domain.errors import InvalidRequestError, TransientError
from scenedex.domain.model import DetectedFace, SceneDocument
from scenedex.domain.spec import EmbeddingStepType
from tests.fakes import hashed_vector
from tests.opensearch_fixtures import InterruptedIndex, OsWorld, WorkerKilled, os_client, os_world, osmem

__all__ = ["os_client", "os_world", "osmem"]  # the fixtures this module uses, imported for pytest
pytestmark = pytest.mark.integration
REINDEX = EmbeddingStepType.SEARCH_REINDEX


def scene_document(
    owner_id: uuid.UUID,
    scene_id: uuid.UUID | None = None,
    *,
    fingerprint: str = "f" * 16,
    input_hash: str = "h1",
    clip_dim: int = 16,
) -> SceneDocument:
    """A document as the runner builds them (fake-embedder sizes: text 8, CLIP 16)."""
    scene_id = scene_id or uuid.uuid4()
    person = uuid.uuid4()
    return SceneDocument(
        scene_id=scene_id,
        video_id=uuid.uuid4(),
        owner_id=owner_id,
        start_s=1.0,
        end_s=2.5,
        texts={"transcript": "a red bicycle", "visual": "", "summary": ""},
        text_vectors={"transcript": hashed_vector("a red bicycle", 8)},
        image_vector=hashed_vector(str(scene_id), clip_dim),
        faces=(DetectedFace((1, 2, 30, 40), hashed_vector("alice", 128) * 1.45, person, 0.12),),
        person_ids=(person,),
        spec_version="2026-11-21+test",
        model_ids={"clip": "fake-clip:v1", "text": "fake-text:v1", "face": "fake-face:v1"},
        fingerprint=fingerprint,
        input_hash=input_hash,
        appearances={person: ((1.0, 1.5), (2.0, 2.5))},
    )


def fixed_clock(seconds: float) -> Any:
    return lambda: int(seconds * 1_000_000_000)


def reindex(progress: Any) -> Any:
    return progress.steps[REINDEX]


def test_first_reprocess_creates_template_index_and_both_aliases(os_world: OsWorld) -> None:
    owners = os_world.library(owners=2, videos=2, scenes=3)
    spec = os_world.spec()
    index = os_world.index(spec)
    layout = index.layout

    progress = os_world.run_all(spec, index)

    assert progress.ok and reindex(progress).computed == 12
    state = index.aliases()
    assert (state.phase, state.read, state.write, state.indexes) == (
        "live",
        layout.index,
        layout.index,
        (layout.index,),
    )
    client = os_world.client
    (template,) = client.indices.get_index_template(name="t-scenes")["index_templates"]
    assert template["index_template"]["index_patterns"] == ["t-scenes_v*"]
    mappings = client.indices.get_mapping(index=layout.index)[layout.index]["mappings"]
    assert mappings["_meta"]["scenedex"] == layout.meta()
    assert mappings["_meta"]["scenedex"]["dimensions"] == {"text": 8, "clip": 16, "face": 128}
    assert mappings["properties"]["faces"]["type"] == "nested"
    assert mappings["properties"]["image_vector"]["method"]["engine"] == "faiss"
    settings = client.indices.get_settings(index=layout.index)[layout.index]["settings"]["index"]
    assert settings["knn"] in (True, "true")
    assert client.count(index="t-scenes")["count"] == 12
    for owner in owners:
        states = index.states(owner, None)
        assert len(states) == 6
        assert {s.fingerprint for s in states.values()} == {spec.fingerprint(REINDEX)}

    again = os_world.run_all(spec, os_world.index(spec))
    assert (reindex(again).computed, reindex(again).skipped) == (0, 12)
    assert index.ping()


def test_resending_the_same_documents_is_idempotent(os_world: OsWorld) -> None:
    spec = os_world.spec()
    owner = uuid.uuid4()
    docs = [scene_document(owner) for _ in range(3)]
    first = os_world.index(spec, clock=fixed_clock(1000))
    twin = os_world.index(spec, clock=fixed_clock(1000))  # a re-delivered message: same version

    assert first.upsert(docs) == {}
    before = first.states(owner, None)
    assert first.upsert(docs) == {}  # newer version: replaced by the same content
    assert twin.upsert(docs) == {}  # same version: 409 from the server, not a failure

    assert first.states(owner, None) == before
    assert os_world.client.count(index="t-scenes")["count"] == 3


def test_an_older_write_arriving_late_never_overwrites_a_newer_one(os_world: OsWorld) -> None:
    spec = os_world.spec()
    owner = uuid.uuid4()
    scene = uuid.uuid4()
    late = os_world.index(spec, clock=fixed_clock(1000))
    recent = os_world.index(spec, clock=fixed_clock(2000))

    assert recent.upsert([scene_document(owner, scene, input_hash="newer")]) == {}
    assert late.upsert([scene_document(owner, scene, input_hash="older")]) == {}

    assert recent.states(owner, [scene])[scene].input_hash == "newer"
    stored = os_world.client.get(index="t-scenes", id=str(scene))
    assert stored["_version"] == 2000 * 1_000_000


def test_a_missing_write_alias_is_never_auto_created(os_world: OsWorld) -> None:
    doc = scene_document(uuid.uuid4())
    client = os_world.client
    results = list(
        helpers.streaming_bulk(
            client, [bulk_action("t-scenes_write", doc, 1)], raise_on_error=False, require_alias=True
        )
    )

    ((ok, item),) = results
    assert not ok and item["index"]["error"]["type"] == "index_not_found_exception"
    assert client.indices.get_alias(index="*") == {}
    assert not client.indices.exists(index="t-scenes_write")


def test_a_write_alias_removed_by_hand_is_put_back_on_the_configured_index(os_world: OsWorld) -> None:
    spec = os_world.spec()
    index = os_world.index(spec)
    owner = uuid.uuid4()
    index.upsert([scene_document(owner)])
    os_world.client.indices.delete_alias(index=index.layout.index, name="t-scenes_write")

    assert index.upsert([scene_document(owner)]) == {}

    assert index.aliases().write == index.layout.index
    assert os_world.client.count(index=index.layout.index)["count"] == 2


def test_a_rejected_document_fails_its_scene_only(os_world: OsWorld) -> None:
    index = os_world.index(os_world.spec())
    owner = uuid.uuid4()
    good = scene_document(owner)
    bad = scene_document(owner, clip_dim=5)  # the index maps 16-d CLIP vectors

    rejected = index.upsert([good, bad])

    assert list(rejected) == [bad.scene_id]
    assert "rejected the document (400)" in rejected[bad.scene_id]
    assert set(index.states(owner, None)) == {good.scene_id}


def test_delete_removes_only_the_owners_documents(os_world: OsWorld) -> None:
    index = os_world.index(os_world.spec())
    alice, bob = uuid.uuid4(), uuid.uuid4()
    alices, bobs = scene_document(alice), scene_document(bob)
    index.upsert([alices, bobs])

    index.delete(alice, [alices.scene_id, bobs.scene_id])

    assert index.states(alice, None) == {}
    assert set(index.states(bob, None)) == {bobs.scene_id}


def test_interrupted_reindex_under_a_new_spec_keeps_reads_then_swaps_exactly_once(
    os_world: OsWorld, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="scenedex.opensearch")
    owners = os_world.library(owners=2, videos=2, scenes=3)
    old_spec = os_world.spec()
    old = os_world.index(old_spec)
    os_world.run_all(old_spec, old)
    new_spec = os_world.spec(face_match_threshold=0.3)  # changes the SEARCH_REINDEX fingerprint
    new_name = os_world.layout(new_spec).index
    assert new_name != old.layout.index

    with pytest.raises(WorkerKilled):
        os_world.run_all(new_spec, InterruptedIndex(os_world.index(new_spec), after=2))

    state = old.aliases()
    assert (state.phase, state.read, state.write) == ("building", old.layout.index, new_name)
    assert os_world.client.count(index="t-scenes")["count"] == 12  # reads: the old, complete index
    assert os_world.client.count(index=new_name)["count"] == 4
    coverage = os_world.index(new_spec).status().coverage
    assert coverage is not None and coverage.totals == (4, 12) and not coverage.complete
    with pytest.raises(SearchIndexBusyError):  # a worker still on the old spec may not write
        old.upsert([scene_document(owners[0], fingerprint=old.layout.fingerprint)])

    resumed = os_world.run_all(new_spec, os_world.index(new_spec))

    assert resumed.ok and reindex(resumed).computed == 8  # only what the new index lacked
    state = old.aliases()
    assert (state.phase, state.read, state.write) == ("live", new_name, new_name)
    assert os_world.client.count(index=old.layout.index)["count"] == 12  # kept for rollback
    assert os_world.client.count(index="t-scenes")["count"] == 12
    noop = os_world.run_all(new_spec, os_world.index(new_spec))
    assert reindex(noop).computed == 0
    promotions = [r for r in caplog.records if r.getMessage().startswith("promoted")]
    assert len(promotions) == 1 and new_name in promotions[0].getMessage()


def test_rollback_returns_to_the_previous_index_and_prune_deletes_the_rest(os_world: OsWorld) -> None:
    os_world.library(owners=1, videos=1, scenes=3)
    old_spec, new_spec = os_world.spec(), os_world.spec(face_match_threshold=0.3)
    old, new = os_world.index(old_spec), os_world.index(new_spec)
    os_world.run_all(old_spec, old)
    os_world.run_all(new_spec, new)
    assert old.aliases().read == new.layout.index

    message = new.rollback()

    assert "rolled back" in message
    state = old.aliases()
    assert (state.read, state.write) == (old.layout.index, old.layout.index)
    marked = new.meta(new.layout.index)
    assert marked["rolled_back_at"] and marked["fingerprint"] == new.layout.fingerprint  # _meta kept
    with pytest.raises(RolledBackIndexError):  # the rolled-back spec neither writes nor swaps back
        new.upsert([scene_document(uuid.uuid4(), fingerprint=new.layout.fingerprint)])
    assert old.upsert([scene_document(uuid.uuid4(), fingerprint=old.layout.fingerprint)]) == {}
    with pytest.raises(InvalidRequestError):
        old.rollback()  # nothing older than the old index
    assert old.prune(dry_run=True) == [new.layout.index]
    assert old.prune() == [new.layout.index]
    assert old.aliases().indexes == (old.layout.index,)

    rebuilt = os_world.run_all(new_spec, os_world.index(new_spec))  # pruned: rebuilt from scratch
    assert rebuilt.ok and reindex(rebuilt).computed == 3
    assert old.aliases().read == new.layout.index


def test_rollback_while_building_abandons_the_build(os_world: OsWorld) -> None:
    os_world.library(owners=1, videos=2, scenes=2)
    old_spec, new_spec = os_world.spec(), os_world.spec(face_match_threshold=0.3)
    old = os_world.index(old_spec)
    os_world.run_all(old_spec, old)
    with pytest.raises(WorkerKilled):
        os_world.run_all(new_spec, InterruptedIndex(os_world.index(new_spec), after=1))

    assert "abandoned the build" in old.rollback()

    state = old.aliases()
    assert (state.phase, state.read, state.write) == ("live", old.layout.index, old.layout.index)
    assert old.upsert([scene_document(uuid.uuid4(), fingerprint=old.layout.fingerprint)]) == {}


def test_verify_finds_missing_stale_and_extra_documents_and_repair_fixes_them(os_world: OsWorld) -> None:
    owner, other = os_world.library(owners=2, videos=2, scenes=2)
    spec = os_world.spec()
    index = os_world.index(spec)
    os_world.run_all(spec, index)
    with os_world.world.uow_factory() as uow:
        scenes = uow.scenes.list_for_videos(owner, None)
    gone, tampered = scenes[0], scenes[1]
    os_world.client.delete(index=index.layout.index, id=str(gone.id), refresh=True)
    doc = scene_document(owner, tampered.id, fingerprint=index.layout.fingerprint, input_hash="tampered")
    extra = scene_document(owner, fingerprint=index.layout.fingerprint)
    index.upsert([doc, extra])

    reports = {r.owner_id: r for r in verify_index(index, os_world.world.uow_factory, spec)}

    mine = reports[owner]
    assert (mine.missing, mine.stale, mine.extra) == ([gone.id], [tampered.id], [extra.scene_id])
    assert (mine.scenes, mine.documents) == (4, 4)
    assert reports[other].ok
    progress = repair_index(index, os_world.runner(spec, index), list(reports.values()))
    assert progress.ok and reindex(progress).computed == 2
    assert all(r.ok for r in verify_index(index, os_world.world.uow_factory, spec))


def test_index_commands(os_world: OsWorld, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    from scenedex.scripts.cli import app

    os_world.library(owners=1, videos=1, scenes=2)
    spec = os_world.spec()
    os_world.run_all(spec, os_world.index(spec))
    url = os_world.client.transport.hosts[0]
    monkeypatch.setenv("SCENEDEX_SEARCH__BACKEND", "opensearch")
    monkeypatch.setenv("SCENEDEX_SEARCH__URL", f"http://{url['host']}:{url['port']}")
    monkeypatch.setenv("SCENEDEX_SEARCH__INDEX_PREFIX", "t-")
    monkeypatch.setenv("SCENEDEX_DATABASE_URL", str(os_world.engine.url))
    monkeypatch.setenv("SCENEDEX_CLIP__PRETRAINED", "none")
    monkeypatch.chdir(tmp_path)  # no .env of the working folder
    cli = CliRunner()

    status = cli.invoke(app, ["index", "status", "--json"])
    assert status.exit_code == 0, status.output
    report = _json(status.output)
    built = os_world.layout(spec).index
    assert report["phase"] == "live" and report["aliases"] == {"t-scenes": built, "t-scenes_write": built}
    assert [i["name"] for i in report["indexes"]] == [built] and report["indexes"][0]["docs"] == 2
    # The CLI runs the real models, so its own index is another one: everything is missing there.
    verify = cli.invoke(app, ["index", "verify", "--json"])
    assert verify.exit_code == 1, verify.output
    (owner,) = _json(verify.output)["owners"]
    assert owner["missing"]["count"] == 2 and report["target"] != built
    assert cli.invoke(app, ["index", "rollback"]).exit_code == 2  # nothing older
    prune = cli.invoke(app, ["index", "prune", "--dry-run", "--json"])
    assert _json(prune.output) == {"deleted": [], "would_delete": []}
    monkeypatch.setenv("SCENEDEX_SEARCH__BACKEND", "table")
    assert cli.invoke(app, ["index", "status"]).exit_code == 2


def _json(output: str) -> Any:
    import json

    return json.loads(output.strip().splitlines()[-1])


def test_an_unreachable_cluster_is_a_transient_error(os_world: OsWorld) -> None:
    client = make_client("http://127.0.0.1:9", max_retries=0, timeout_s=2)  # nothing listens there
    index = OpenSearchIndex(client, os_world.layout(os_world.spec()))

    assert not index.ping()
    with pytest.raises(TransientError, match="unreachable"):
        index.upsert([scene_document(uuid.uuid4())])
    with pytest.raises(TransientError, match="unreachable"):
        index.states(uuid.uuid4(), None)


def test_vectors_are_sent_as_unit_floats(os_world: OsWorld) -> None:
    index: OpenSearchIndex = os_world.index(os_world.spec())
    doc = scene_document(uuid.uuid4())
    index.upsert([doc])

    source = os_world.client.get(index="t-scenes", id=str(doc.scene_id))["_source"]

    (face,) = source["faces"]
    assert np.isclose(np.linalg.norm(face["descriptor"]), 1.0, atol=1e-5)
    assert source["person_ids"] == [str(doc.person_ids[0])] and "visual_vector" not in source


def test_appearances_round_trip_to_the_person_hits(os_world: OsWorld) -> None:
    index: OpenSearchIndex = os_world.index(os_world.spec())
    doc, other = scene_document(uuid.uuid4()), scene_document(uuid.uuid4())
    (person,) = doc.person_ids
    index.upsert([doc, other])

    source = os_world.client.get(index="t-scenes", id=str(doc.scene_id))["_source"]
    assert source["appearances"] == [
        {"person_id": str(person), "start_s": 1.0, "end_s": 1.5},
        {"person_id": str(person), "start_s": 2.0, "end_s": 2.5},
    ]
    (mapping,) = os_world.client.indices.get_mapping(index="t-scenes").values()
    assert mapping["mappings"]["properties"]["appearances"]["type"] == "nested"
    # osmem has no kNN: the person search's _source selection on a plain query, read as its hits
    os_world.client.indices.refresh(index="t-scenes")
    body = {"_source": list(PERSON_SOURCE_FIELDS), "query": {"ids": {"values": [str(doc.scene_id)]}}}
    (hit,) = os_world.client.search(index="t-scenes", body=body)["hits"]["hits"]
    assert search_hit(hit, "bm25", person).appearances == ((1.0, 1.5), (2.0, 2.5))
    assert search_hit(hit, "bm25", other.person_ids[0]).appearances == ()
