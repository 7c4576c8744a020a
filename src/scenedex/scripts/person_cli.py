"""``scenedex person``: an owner's persons and their reference photos, on the use cases of
``scenedex.services.persons`` that the API's ``/v1/persons`` routes call too (same checks; with
``--json``, persons in the API's shape, except ``add``: ``{"person_id", "photos": <count>}``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from scenedex.domain.request import parse_uuid
from scenedex.scripts.common import (
    JsonOption,
    NoReprocessOption,
    OwnerOption,
    build_application,
    parse_owner,
    print_json,
    reprocess_owner_or_fail,
    stderr,
    user_errors,
)

if TYPE_CHECKING:
    from scenedex.services.persons import PersonView

person_app = typer.Typer(
    help="Persons and their reference photos.", no_args_is_help=True, rich_markup_mode="rich"
)
PersonArgument = Annotated[str, typer.Argument(help="Person id (UUID).")]


@person_app.command(
    "add",
    epilog="Then enqueues the owner's reprocess (its photos embedded, its scenes matched again), as "
    "POST /v1/persons does; --no-reprocess leaves that to the next reprocess. When the broker is "
    "unreachable the person is still created, and the error (exit 1) says what to run.",
)
def person_add(
    photos: Annotated[list[Path], typer.Argument(help="Reference photos of the person.")],
    owner_id: OwnerOption,
    name: Annotated[str, typer.Option(help="Person's name.")],
    no_reprocess: NoReprocessOption = False,
    json_output: JsonOption = False,
) -> None:
    """Create a person from reference photos and enqueue the owner's reprocess."""
    from scenedex.services.persons import PhotoUpload

    with user_errors():
        owner = parse_owner(owner_id)
        uploads = [PhotoUpload.from_file(path) for path in photos]
        app = build_application()
        view = app.persons.create(owner, name, uploads)
    job = None if no_reprocess else reprocess_owner_or_fail(app, owner, f"person {view.person.id} created")
    if json_output:
        print_json({"person_id": str(view.person.id), "photos": len(view.photos), "reprocess_job_id": job})
    else:
        print(f"person {view.person.id}: {len(view.photos)} photos")
        if job:
            print(f"reprocess of owner {owner}: job {job}; follow it with: scenedex jobs status {job}")


@person_app.command("list")
def person_list(
    owner_id: OwnerOption,
    limit: Annotated[int, typer.Option(help="Persons per page.")] = 50,
    offset: Annotated[int, typer.Option(help="Persons to skip.")] = 0,
    json_output: JsonOption = False,
) -> None:
    """The owner's persons, oldest first, with how many photos each has and how many are usable."""
    with user_errors():
        page = build_application().persons.list(parse_owner(owner_id), limit=limit, offset=offset)
    if json_output:
        print_json({"persons": [v.to_dict() for v in page.persons], "total": page.total})
        return
    table = Table(title=f"{len(page.persons)} of {page.total} persons")
    for column in ("person", "name", "photos", "usable"):
        table.add_column(column, no_wrap=column != "name")
    for view in page.persons:
        usable = sum(1 for p in view.photos if p.status.value == "ok")
        table.add_row(str(view.person.id), view.person.name, str(len(view.photos)), str(usable))
    Console().print(table)


@person_app.command("show")
def person_show(person_id: PersonArgument, owner_id: OwnerOption, json_output: JsonOption = False) -> None:
    """A person and its photos, each with its status (pending, ok, no_face, failed) and error."""
    with user_errors():
        view = build_application().persons.get(parse_owner(owner_id), _person(person_id))
    _print_person(view, json_output)


@person_app.command("rename")
def person_rename(
    person_id: PersonArgument,
    owner_id: OwnerOption,
    name: Annotated[str, typer.Option(help="The new name.")],
    json_output: JsonOption = False,
) -> None:
    """Give a person a new name (no embedding depends on it: nothing is reprocessed)."""
    with user_errors():
        view = build_application().persons.rename(parse_owner(owner_id), _person(person_id), name)
    _print_person(view, json_output)


@person_app.command(
    "delete",
    epilog="The owner's reprocess is then enqueued (the workers match the scene faces again, from "
    "their stored descriptors); with --no-reprocess, run scenedex reprocess --scope owner later. If "
    "the broker is unreachable the person is still deleted, and the error (exit 1) says what to run.",
)
def person_delete(
    person_id: PersonArgument,
    owner_id: OwnerOption,
    no_reprocess: NoReprocessOption = False,
    json_output: JsonOption = False,
) -> None:
    """Delete a person: its row, photos, their records and photo blobs."""
    with user_errors():
        owner = parse_owner(owner_id)
        app = build_application()
        view = app.persons.delete(owner, _person(person_id))
    job = None if no_reprocess else reprocess_owner_or_fail(app, owner, "person deleted")
    if json_output:
        print_json({**view.to_dict(), "deleted": True, "reprocess_job_id": job})
    else:
        print(f"person {view.person.id} ({view.person.name}) deleted with {len(view.photos)} photos")
        if job:
            print(f"reprocess of owner {owner}: job {job}; follow it with: scenedex jobs status {job}")


def _person(value: str) -> Any:
    return parse_uuid(value, "person id")


def _print_person(view: PersonView, json_output: bool) -> None:
    if json_output:
        print_json(view.to_dict())
        return
    print(f"person {view.person.id}: {view.person.name}")
    for photo in view.photos:
        error = f" ({photo.error})" if photo.error else ""
        print(f"  photo {photo.id}: {photo.status.value}{error}")
    if not view.photos:
        stderr.print("  no photos: this person matches no face")
