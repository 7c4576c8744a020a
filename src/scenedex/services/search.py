"""Owner-scoped scene search: builds query vectors with the configured embedders and asks the
SearchIndex port (table-backed exact kNN, or OpenSearch hybrid search) for the nearest scenes."""

from __future__ import annotations

import uuid

import numpy as np

from scenedex.domain.errors import BadInputError, InvalidRequestError, NotFoundError
from scenedex.domain.model import SearchHit, SearchQuery
from scenedex.domain.ports import ImageEmbedder, SearchIndex, TextEmbedder, UnitOfWorkFactory
from scenedex.domain.spec import EmbeddingStepType

MAX_K = 1000


def is_untrained(image_embedder: ImageEmbedder) -> bool:
    """True when CLIP runs on random weights (its text tower then means nothing)."""
    return ":untrained" in image_embedder.model_id


def search_scenes(
    *,
    uow_factory: UnitOfWorkFactory,
    index: SearchIndex,
    text_embedder: TextEmbedder,
    image_embedder: ImageEmbedder,
    owner_id: uuid.UUID,
    text: str | None = None,
    image: bytes | None = None,
    person_id: uuid.UUID | None = None,
    k: int = 10,
) -> list[SearchHit]:
    """The owner's ``k`` best scenes for exactly one of ``text``, ``image`` (encoded bytes) or
    ``person_id``. Text queries use the text model over the text channels, plus CLIP's text
    tower over the image embeddings when real CLIP weights are configured.

    Raises ``InvalidRequestError`` (no or several queries, bad k, unreadable image, person
    without a query embedding) and ``NotFoundError`` (person not the owner's).
    """
    given = [q for q in (text, image, person_id) if q is not None]
    if len(given) != 1:
        raise InvalidRequestError("give exactly one of: text, image, person id")
    if not 1 <= k <= MAX_K:
        raise InvalidRequestError(f"k must be between 1 and {MAX_K}, got {k}")
    if text is not None:
        if not text.strip():
            raise InvalidRequestError("the text query is empty")
        clip_text = None if is_untrained(image_embedder) else image_embedder.encode_text([text])[0]
        query = SearchQuery(
            text_vector=text_embedder.embed_texts([text])[0], clip_text_vector=clip_text, text=text
        )
    elif image is not None:
        (vector,) = image_embedder.embed_images([image])
        if isinstance(vector, BadInputError):
            raise InvalidRequestError(f"query image: {vector}")
        query = SearchQuery(image_vector=vector)
    else:
        assert person_id is not None
        query = SearchQuery(face_vector=_person_vector(uow_factory, owner_id, person_id))
    return index.search(owner_id, query, k)


def _person_vector(uow_factory: UnitOfWorkFactory, owner_id: uuid.UUID, person_id: uuid.UUID) -> np.ndarray:
    with uow_factory() as uow:
        if uow.persons.get(owner_id, person_id) is None:
            raise NotFoundError(f"person {person_id} not found for owner {owner_id}")
        records = uow.records.get(EmbeddingStepType.PERSON_QUERY_EMBEDDINGS, owner_id, [person_id])
    record = records.get((person_id, ""))
    if record is None or record.vector is None:
        raise InvalidRequestError(
            f"person {person_id} has no query embedding: run a reprocess, and check that "
            "the person's photos show a face"
        )
    return record.vector
