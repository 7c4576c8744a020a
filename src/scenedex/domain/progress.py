"""Progress and plan types of a reprocess: counts per step, item errors, the dry-run plan, and
the listener told as items finish (progress bars)."""

from __future__ import annotations

import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from scenedex.domain.logcontext import SpecLogger, log_context
from scenedex.domain.spec import EmbeddingStepType

Step = EmbeddingStepType

OPTIONAL_STEPS = (EmbeddingStepType.SCENE_OCR,)
"""Steps only some specs have (SCENE_OCR: ``SCENEDEX_OCR__ENABLED``): a progress or plan lists
them once counted, so a run without OCR reports the steps it reported before OCR existed."""


@dataclass
class StepCounts:
    """Items of one step: planned = computed + skipped + failed once the run is over."""

    planned: int = 0
    computed: int = 0
    skipped: int = 0
    failed: int = 0


@dataclass(frozen=True)
class ItemError:
    """One failed item: which step, which item (photo, person or scene id) and why."""

    step: EmbeddingStepType
    item_id: uuid.UUID
    message: str
    owner_id: uuid.UUID | None = None
    video_id: uuid.UUID | None = None


@dataclass
class ReprocessProgress:
    """Counters per step and the errors of a run (or of one video within a job)."""

    spec_version: str
    steps: dict[EmbeddingStepType, StepCounts] = field(
        default_factory=lambda: {
            step: StepCounts() for step in EmbeddingStepType if step not in OPTIONAL_STEPS
        }
    )
    errors: list[ItemError] = field(default_factory=list)
    seconds: dict[EmbeddingStepType, float] = field(default_factory=lambda: defaultdict(float))

    @property
    def failed(self) -> int:
        return sum(counts.failed for counts in self.steps.values())

    @property
    def ok(self) -> bool:
        return self.failed == 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary: ``{"spec_version", "steps": [{"step", "planned", "computed",
        "skipped", "failed", "seconds"}], "errors": [{"step", "item_id", "message", ...}]}``."""
        return {
            "spec_version": self.spec_version,
            "steps": [
                {
                    "step": step.value,
                    "planned": c.planned,
                    "computed": c.computed,
                    "skipped": c.skipped,
                    "failed": c.failed,
                    "seconds": round(self.seconds.get(step, 0.0), 3),
                }
                for step, c in self.steps.items()
            ],
            "errors": [
                {
                    "step": e.step.value,
                    "item_id": str(e.item_id),
                    "owner_id": str(e.owner_id) if e.owner_id else None,
                    "video_id": str(e.video_id) if e.video_id else None,
                    "message": e.message,
                }
                for e in self.errors
            ],
        }


class StaleReason(StrEnum):
    MISSING = "missing"
    FINGERPRINT = "fingerprint_changed"
    INPUT = "input_changed"
    FORCED = "forced"


@dataclass
class StepPlan:
    """Dry-run counts of one step: missing, stale by reason, current."""

    missing: int = 0
    stale: Counter[str] = field(default_factory=Counter)
    current: int = 0

    def count(self, reason: StaleReason | None) -> None:
        """Count one item: current (None), missing, or stale for ``reason``."""
        if reason is None:
            self.current += 1
        elif reason is StaleReason.MISSING:
            self.missing += 1
        else:
            self.stale[reason.value] += 1


@dataclass
class ReprocessPlan:
    spec_version: str
    owners: int = 0
    videos: int = 0
    scenes: int = 0
    steps: dict[EmbeddingStepType, StepPlan] = field(
        default_factory=lambda: {step: StepPlan() for step in EmbeddingStepType if step not in OPTIONAL_STEPS}
    )

    def to_dict(self) -> dict[str, Any]:
        """``{"spec_version", "owners", "videos", "scenes", "steps": [{"step", "missing",
        "stale", "stale_by_reason", "current"}]}``."""
        return {
            "spec_version": self.spec_version,
            "owners": self.owners,
            "videos": self.videos,
            "scenes": self.scenes,
            "steps": [
                {
                    "step": step.value,
                    "missing": plan.missing,
                    "stale": sum(plan.stale.values()),
                    "stale_by_reason": dict(plan.stale),
                    "current": plan.current,
                }
                for step, plan in self.steps.items()
            ],
        }


class ProgressListener(Protocol):
    """Told how many items each step plans and as items finish (for progress bars)."""

    def planned(self, step: EmbeddingStepType, total: int) -> None: ...

    def advanced(self, step: EmbeddingStepType, count: int) -> None: ...


class ProgressTracker:
    """Updates a ``ReprocessProgress`` and the optional listener together; failures are logged
    (warning) with the step and item id."""

    def __init__(
        self,
        progress: ReprocessProgress,
        listener: ProgressListener | None,
        log: SpecLogger,
    ):
        self.log = log
        self.progress = progress
        self.listener = listener

    def plan(self, step: Step, total: int) -> None:
        self.progress.steps.setdefault(step, StepCounts()).planned += total
        if self.listener:
            self.listener.planned(step, total)

    def skipped(self, step: Step, count: int = 1) -> None:
        self.progress.steps.setdefault(step, StepCounts()).skipped += count
        self._advance(step, count)

    def computed(self, step: Step, count: int = 1) -> None:
        self.progress.steps.setdefault(step, StepCounts()).computed += count
        self._advance(step, count)

    def failed(
        self,
        step: Step,
        item_id: uuid.UUID,
        message: str,
        owner_id: uuid.UUID | None = None,
        video_id: uuid.UUID | None = None,
    ) -> None:
        self.progress.steps.setdefault(step, StepCounts()).failed += 1
        self.progress.errors.append(ItemError(step, item_id, message, owner_id, video_id))
        self.log.warning("%s failed for %s: %s", step.value, item_id, message)
        self._advance(step, 1)

    def _advance(self, step: Step, count: int) -> None:
        if self.listener and count:
            self.listener.advanced(step, count)

    @contextmanager
    def timed(self, step: Step) -> Iterator[None]:
        """Time the block as ``step``'s (its lines carry ``step`` in the log context)."""
        start = time.perf_counter()
        try:
            with log_context(step=step.value):
                yield
        finally:
            self.progress.seconds[step] += time.perf_counter() - start
