"""The interfaces the runner and the use cases are given (constructor injection), one module per
concern: the model ports (``media``), the search index (``search``), the repositories and the
unit of work (``repositories``), the job store, events, sender and probe (``jobs``), the outbox,
the feed and the webhook store (``events``); the blob store is ``domain.blobs``'s, the face
clusters' and decisions' repositories their modules'.
Adapters implement them; unit tests implement them with fakes (``tests/fakes.py``).
"""

from scenedex.domain.blobs import BlobStore
from scenedex.domain.face_clusters import FaceClusterRepository
from scenedex.domain.face_decisions import FaceDecisionRepository
from scenedex.domain.ports.events import EventReader, EventRecorder, WebhookStore
from scenedex.domain.ports.jobs import (
    JobEvents,
    JobReader,
    JobStore,
    JobSweeper,
    JobWriter,
    LiveWorker,
    MessageProbe,
    MessageSender,
    QueueDepth,
    WorkerFleet,
)
from scenedex.domain.ports.media import (
    FaceEmbedder,
    ImageEmbedder,
    OcrLine,
    OcrReader,
    TextEmbedder,
    VideoFrames,
)
from scenedex.domain.ports.repositories import (
    EmbeddingRecordRepository,
    PersonRepository,
    RecordKey,
    SceneRepository,
    UnitOfWork,
    UnitOfWorkFactory,
    VideoRepository,
)
from scenedex.domain.ports.search import IndexGeneration, SearchIndex

__all__ = [
    "BlobStore",
    "EmbeddingRecordRepository",
    "EventReader",
    "EventRecorder",
    "FaceClusterRepository",
    "FaceDecisionRepository",
    "FaceEmbedder",
    "ImageEmbedder",
    "IndexGeneration",
    "JobEvents",
    "JobReader",
    "JobStore",
    "JobSweeper",
    "JobWriter",
    "LiveWorker",
    "MessageProbe",
    "MessageSender",
    "OcrLine",
    "OcrReader",
    "PersonRepository",
    "QueueDepth",
    "RecordKey",
    "SceneRepository",
    "SearchIndex",
    "TextEmbedder",
    "UnitOfWork",
    "UnitOfWorkFactory",
    "VideoFrames",
    "VideoRepository",
    "WebhookStore",
    "WorkerFleet",
]
