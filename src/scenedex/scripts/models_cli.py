"""``scenedex models list|fetch|verify``: the pinned model files of the configuration
(``services.models``), and the start-up check the worker, the API and the embedding service run.

Exit codes as in ``common``: ``verify`` and ``fetch`` exit 1 when a file is missing, partial or
corrupt after them (a refused download names its URL and both hashes), 2 for a malformed
``SCENEDEX_MODELS__REGISTRY``.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from scenedex.adapters.model_download import Progress as ProgressCallback
from scenedex.adapters.model_registry import ModelFile
from scenedex.scripts.common import JsonOption, print_json, stderr, user_errors
from scenedex.services.models import FileState, FileStatus, ModelFiles
from scenedex.settings import Settings

models_app = typer.Typer(
    help="Pinned model weights: list, fetch (resumable, checked) and verify them.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
EveryOption = Annotated[
    bool, typer.Option("--all", help="Every pinned file, not only those the configuration uses.")
]
_STYLES = {"ok": "green", "missing": "yellow", "partial": "yellow", "corrupt": "bold red"}


def _files() -> ModelFiles:
    with user_errors():
        return ModelFiles.from_settings(Settings())


def _size(value: int | None) -> str:
    return "?" if value is None else f"{value / 2**20:,.1f} MiB"


def _report(statuses: list[FileStatus], json_output: bool, files: ModelFiles) -> None:
    bad = [s for s in statuses if s.state is not FileState.OK]
    if json_output:
        print_json({"ok": not bad, "folder": str(files.folder), "files": [s.to_dict() for s in statuses]})
    else:
        console = Console(highlight=False, soft_wrap=True)
        if not statuses:
            console.print("the configuration uses no pinned model file (untrained or a local checkpoint)")
        for status in statuses:
            state = status.state.value
            detail = f"{_size(status.size)}"
            if status.state is FileState.CORRUPT:
                detail += f", sha256 {status.sha256} != pinned {status.file.sha256}"
            console.print(
                f"[{_STYLES[state]}]{state.upper():<7}[/] {status.file.model_id}  {status.path}  {detail}"
            )
        if bad:
            stderr.print("run: scenedex models fetch", highlight=False)
    if bad:
        raise typer.Exit(1)


@models_app.command("list")
def models_list(every: EveryOption = False, json_output: JsonOption = False) -> None:
    """The pinned files the configuration uses: model id, file, size, SHA-256, source URL."""
    files = _files()
    entries = list(files.registry.values()) if every else files.needed()
    if json_output:
        print_json(
            {
                "folder": str(files.folder),
                "mirror": files.mirror,
                "files": [
                    {
                        "model_id": f.model_id,
                        "file": f.filename,
                        "size": f.size,
                        "sha256": f.sha256,
                        "url": f.source(files.mirror),
                    }
                    for f in entries
                ],
            }
        )
        return
    table = Table(title=f"model files under {files.folder}")
    for column in ("model id", "file", "size", "sha256", "source"):
        table.add_column(column, overflow="fold")
    for f in entries:
        table.add_row(f.model_id, f.filename, _size(f.size), f.sha256[:16], f.source(files.mirror))
    Console().print(table)


@models_app.command("fetch")
def models_fetch(every: EveryOption = False, json_output: JsonOption = False) -> None:
    """Download missing or corrupt files (from SCENEDEX_MODELS__MIRROR or their URL), resuming, checked."""
    files = _files()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=stderr,
        transient=json_output,
    ) as bars:

        def on_file(file: ModelFile) -> ProgressCallback:
            task = bars.add_task(file.filename, total=file.size)

            def update(done: int, total: int | None) -> None:
                bars.update(task, completed=done, total=total or file.size)

            return update

        with user_errors():
            statuses = files.fetch(every=every, on_file=on_file)
    _report(statuses, json_output, files)


@models_app.command("verify")
def models_verify(every: EveryOption = False, json_output: JsonOption = False) -> None:
    """Hash the files that are there: ok, missing, partial (an interrupted fetch) or corrupt."""
    files = _files()
    with user_errors():
        statuses = files.verify(every=every)
    _report(statuses, json_output, files)
