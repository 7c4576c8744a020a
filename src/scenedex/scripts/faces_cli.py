"""``scenedex faces``: an owner's suggested persons (clusters of unknown faces) and the decisions
about them, on the use cases of ``scenedex.services.face_clusters`` that the API's
``/v1/face-clusters`` routes call too (same checks; with ``--json``, the API's shapes: the page
of suggestions, and each decision with ``reprocess_job_id``, as ``scenedex person delete``)."""

from __future__ import annotations

from typing import Annotated, Any

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
    user_errors,
)

_DECISION_EPILOG = (
    "The owner's reprocess is then enqueued (the workers match the scene faces again with the "
    "decision, and cluster the unknown ones again); with --no-reprocess, run scenedex reprocess "
    "--scope owner later. If the broker is unreachable the decision is still stored, and the error "
    "(exit 1) says what to run."
)
faces_app = typer.Typer(
    help="Suggested persons (clusters of unknown faces) and decisions about them.",
    epilog="Faces no person matched are clustered after each reprocess of their owner; "
    "scenedex faces clusters lists the clusters, largest first.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
ClusterArgument = Annotated[str, typer.Argument(help="Suggestion id (fc-..., as listed).")]


@faces_app.command("clusters")
def faces_clusters(
    owner_id: OwnerOption,
    limit: Annotated[int, typer.Option(help="Suggestions per page (at most 100).")] = 20,
    offset: Annotated[int, typer.Option(help="Suggestions to skip.")] = 0,
    json_output: JsonOption = False,
) -> None:
    """The owner's suggested persons, largest first: faces, scenes and the representative face."""
    with user_errors():
        page = build_application().face_clusters.list(parse_owner(owner_id), limit=limit, offset=offset)
    if json_output:
        print_json(
            {
                "suggestions": [v.to_dict() for v in page.suggestions],
                "total": page.total,
                "limit": limit,
                "offset": offset,
                "next_offset": offset + limit if offset + limit < page.total else None,
                "computed_at": page.computed_at.isoformat() if page.computed_at else None,
                "unknown_faces": page.unknown_faces,
                "waiting_faces": page.waiting_faces,
            }
        )
        return
    table = Table(title=f"{len(page.suggestions)} of {page.total} suggested persons")
    for column in ("cluster", "faces", "scenes", "representative scene", "at (s)"):
        table.add_column(column, no_wrap=True)
    for view in page.suggestions:
        rep = view.representative
        table.add_row(
            view.cluster_id,
            str(view.size),
            str(len(view.scene_ids)),
            str(rep.scene_id),
            f"{rep.first_s:.1f}-{rep.last_s:.1f}",
        )
    Console().print(table)


@faces_app.command("confirm", epilog=_DECISION_EPILOG)
def faces_confirm(
    cluster_id: ClusterArgument,
    owner_id: OwnerOption,
    person_id: Annotated[str | None, typer.Option(help="An existing person (UUID).")] = None,
    name: Annotated[str | None, typer.Option(help="The name of a new person.")] = None,
    no_reprocess: NoReprocessOption = False,
    json_output: JsonOption = False,
) -> None:
    """Confirm a suggestion as an existing person (--person-id) or a new one (--name)."""
    with user_errors():
        owner = parse_owner(owner_id)
        person = None if person_id is None else parse_uuid(person_id, "person id")
        app = build_application()
        decided = app.face_clusters.confirm(owner, cluster_id, person_id=person, name=name)
    _report(decided, app, owner, no_reprocess, json_output)


@faces_app.command("reject", epilog=_DECISION_EPILOG)
def faces_reject(
    face_id: Annotated[str, typer.Argument(help="Face id (<scene id>:<track index>).")],
    owner_id: OwnerOption,
    person_id: Annotated[str, typer.Option(help="The person this face is not (UUID).")],
    no_reprocess: NoReprocessOption = False,
    json_output: JsonOption = False,
) -> None:
    """Reject one face for a person: in its scene it never matches that person again."""
    with user_errors():
        owner = parse_owner(owner_id)
        person = parse_uuid(person_id, "person id")
        app = build_application()
        decided = app.face_clusters.reject(owner, face_id, person)
    _report(decided, app, owner, no_reprocess, json_output)


@faces_app.command("split", epilog=_DECISION_EPILOG)
def faces_split(
    cluster_id: ClusterArgument,
    face_ids: Annotated[list[str], typer.Argument(help="Faces of the suggestion to suggest apart.")],
    owner_id: OwnerOption,
    no_reprocess: NoReprocessOption = False,
    json_output: JsonOption = False,
) -> None:
    """Split faces off a suggestion: they are suggested apart, as one group, from the next reprocess on."""
    with user_errors():
        owner = parse_owner(owner_id)
        app = build_application()
        decided = app.face_clusters.split(owner, cluster_id, face_ids)
    _report(decided, app, owner, no_reprocess, json_output)


def _report(decided: Any, app: Any, owner: Any, no_reprocess: bool, json_output: bool) -> None:
    """The stored decision, then the owner's reprocess unless ``no_reprocess``."""
    job = None if no_reprocess else reprocess_owner_or_fail(app, owner, "decision stored")
    if json_output:
        print_json({**decided.to_dict(), "reprocess_job_id": job})
        return
    said = [decided.kind.value]
    if decided.person_id:
        said.append(f"person {decided.person_id}")
    if decided.person_name:
        said.append(f"({decided.person_name}{', created' if decided.person_created else ''})")
    print(f"{' '.join(said)}: {len(decided.face_ids)} face(s)")
    if job:
        print(f"reprocess of owner {owner}: job {job}; follow it with: scenedex jobs status {job}")
