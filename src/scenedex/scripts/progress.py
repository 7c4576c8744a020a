"""Progress bars on stderr for the commands that run a reprocess (``reprocess``, ``demo``,
``bench``)."""

from __future__ import annotations

from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from scenedex.domain.spec import EmbeddingStepType
from scenedex.scripts.common import stderr


class ProgressBars:
    """A rich progress bar per step on stderr (implements ProgressListener)."""

    def __init__(self, enabled: bool) -> None:
        self._progress = Progress(
            TextColumn("{task.description:<26}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=stderr,
            disable=not enabled,
        )
        self._tasks: dict[EmbeddingStepType, Any] = {
            step: self._progress.add_task(step.value, total=0) for step in EmbeddingStepType
        }

    def __enter__(self) -> ProgressBars:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def planned(self, step: EmbeddingStepType, total: int) -> None:
        task = self._tasks[step]
        self._progress.update(task, total=(self._progress.tasks[task].total or 0) + total)

    def advanced(self, step: EmbeddingStepType, count: int) -> None:
        self._progress.advance(self._tasks[step], count)
