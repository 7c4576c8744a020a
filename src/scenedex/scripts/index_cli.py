"""``scenedex index ...``: the OpenSearch scene indexes (``SCENEDEX_SEARCH__BACKEND=opensearch``).

- ``status``: aliases, the phase (none, live, building), every index with its documents, spec
  and models, and the coverage of an index being built;
- ``verify [--owner-id] [--repair]``: database against this configuration's index per owner
  (missing, stale, extra); ``--repair`` deletes extras and re-sends the rest through the runner;
- ``promote``: move the read alias to the index being built if it covers every scene (writes
  do this by themselves; this is for a build whose last write was a delete, say);
- ``rollback``: abandon a build, or move both aliases back to the previous index;
- ``prune [--dry-run]``: delete the indexes no alias points at.

Exit codes as in ``common``: 0 ok; 1 differences found (or left after ``--repair``), or
OpenSearch unusable; 2 usage error (another backend, bad owner id, nothing to roll back).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from scenedex.domain.errors import InvalidRequestError
from scenedex.domain.request import parse_uuid
from scenedex.scripts.common import JsonOption, build_services, fail, print_json, user_errors

index_app = typer.Typer(
    help="OpenSearch scene indexes: status, verify, promote, rollback, prune.",
    epilog="Only with SCENEDEX_SEARCH__BACKEND=opensearch (the table backend has no indexes; exit 2).",
    no_args_is_help=True,
    rich_markup_mode="rich",
)


@contextmanager
def _index_errors() -> Iterator[None]:
    """scenedex errors as in ``common.user_errors``; OpenSearch answers as a one-line exit 1."""
    from opensearchpy.exceptions import TransportError

    with user_errors():
        try:
            yield
        except TransportError as error:
            fail(f"OpenSearch: {error}", 1)


def _services_and_index() -> tuple[Any, Any]:
    from scenedex.adapters.opensearch import OpenSearchIndex

    services = build_services()
    if not isinstance(services.search_index, OpenSearchIndex):
        raise InvalidRequestError(
            "index commands need SCENEDEX_SEARCH__BACKEND=opensearch (the table backend has no indexes)"
        )
    return services, services.search_index


@index_app.command("status")
def index_status(json_output: JsonOption = False) -> None:
    """Aliases, live and building indexes, documents per index, spec and models behind each."""
    with _index_errors():
        _, index = _services_and_index()
        report = index.status().to_dict()
    if json_output:
        print_json(report)
        return
    console = Console()
    aliases = ", ".join(f"{alias} -> {target or '(none)'}" for alias, target in report["aliases"].items())
    console.print(f"[bold]{report['phase']}[/bold]: {aliases}", highlight=False)
    console.print(f"this configuration writes {report['target']}", highlight=False)
    table = Table(title=f"{len(report['indexes'])} scene indexes")
    for column in ("index", "roles", "docs", "spec", "models", "dims", "created", "rolled back"):
        table.add_column(column)
    for info in report["indexes"]:
        models = info["model_ids"] or {}
        dims = info["dimensions"] or {}
        table.add_row(
            info["name"],
            ", ".join(info["roles"]),
            str(info["docs"]),
            str(info["spec_version"]),
            "\n".join(f"{role}: {model}" for role, model in models.items()),
            " ".join(f"{role}={dim}" for role, dim in dims.items()),
            (info["created_at"] or "")[:19],
            (info["rolled_back_at"] or "")[:19],
        )
    console.print(table)
    coverage = report["coverage"]
    if coverage:
        console.print(
            f"building {coverage['index']}: {coverage['indexed']}/{coverage['scenes']} scenes, "
            f"{len(coverage['owners_behind'])} owner(s) behind",
            highlight=False,
        )


@index_app.command("verify", epilog="Exit 1 when any is found (with --repair: when any is left afterwards).")
def index_verify(
    owner_id: Annotated[
        str | None, typer.Option("--owner-id", help="Only this owner (default: every owner).")
    ] = None,
    repair: Annotated[
        bool, typer.Option("--repair", help="Delete extra documents, re-send missing and stale ones.")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Compare the database with this configuration's index: missing, stale, extra documents per owner."""
    from scenedex.adapters.opensearch.verify import repair_index, verify_index

    with _index_errors():
        owner = parse_uuid(owner_id, "owner id")
        services, index = _services_and_index()
        owners = [owner] if owner else None
        reports = verify_index(index, services.uow_factory, services.spec, owners)
        result: dict[str, Any] = {"index": index.layout.index, "owners": [r.to_dict() for r in reports]}
        if repair and not all(r.ok for r in reports):
            progress = repair_index(index, services.runner(), reports)
            reports = verify_index(index, services.uow_factory, services.spec, [r.owner_id for r in reports])
            result["repair"] = progress.to_dict()
            result["after"] = [r.to_dict() for r in reports]
    ok = all(r.ok for r in reports)
    result["ok"] = ok
    if json_output:
        print_json(result)
    else:
        _print_verify(result)
    raise typer.Exit(0 if ok else 1)


@index_app.command(
    "promote",
    epilog="Writes promote a complete build by themselves; this is for a build whose last write was a "
    "delete, say. Exit 1 when the index being built does not cover every scene yet.",
)
def index_promote(json_output: JsonOption = False) -> None:
    """Promote the index being built (read alias moved to it) if it covers every scene."""
    with _index_errors():
        _, index = _services_and_index()
        coverage = index.promote_if_complete()
        state = index.aliases()
    report = {"phase": state.phase, "read": state.read, "write": state.write}
    report["coverage"] = coverage.to_dict() if coverage else None
    if json_output:
        print_json(report)
    elif coverage is None:
        print(f"nothing to promote ({state.phase}: reads on {state.read}, writes on {state.write})")
    else:
        indexed, scenes = coverage.totals
        print(f"{state.phase}: reads on {state.read}; {coverage.index} covers {indexed}/{scenes} scenes")
    raise typer.Exit(0 if coverage is None or coverage.complete else 1)


@index_app.command(
    "rollback",
    epilog="The index left is marked rolled back: it is not written to or promoted again until pruned.",
)
def index_rollback(json_output: JsonOption = False) -> None:
    """Abandon the build in progress, or move both aliases back to the previous index."""
    with _index_errors():
        _, index = _services_and_index()
        message = index.rollback()
        state = index.aliases()
    if json_output:
        print_json({"message": message, "read": state.read, "write": state.write})
    else:
        print(message)


@index_app.command("prune")
def index_prune(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what would be deleted.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Delete the scene indexes no alias points at (old, abandoned and rolled-back ones)."""
    with _index_errors():
        _, index = _services_and_index()
        names = index.prune(dry_run=dry_run)
    if json_output:
        print_json({"deleted": [] if dry_run else names, "would_delete": names if dry_run else []})
    else:
        verb = "would delete" if dry_run else "deleted"
        print(f"{verb} {len(names)} index(es){': ' + ', '.join(names) if names else ''}")


def _print_verify(result: dict[str, Any]) -> None:
    console = Console()
    rows = result.get("after", result["owners"])
    title = f"{result['index']}: database against index" + (" after repair" if "after" in result else "")
    table = Table(title=title)
    for column in ("owner", "scenes", "documents", "missing", "stale", "extra"):
        table.add_column(column, justify="left" if column == "owner" else "right")
    for row in rows:
        table.add_row(
            row["owner_id"],
            str(row["scenes"]),
            str(row["documents"]),
            *(str(row[kind]["count"]) for kind in ("missing", "stale", "extra")),
        )
    console.print(table)
    if "repair" in result:
        steps = {s["step"]: s for s in result["repair"]["steps"]}
        console.print(
            f"repair: {steps['search_reindex']['computed']} document(s) re-sent, "
            f"{len(result['repair']['errors'])} error(s)",
            highlight=False,
        )
        for error in result["repair"]["errors"]:
            console.print(f"failed {error['step']} {error['item_id']}: {error['message']}", highlight=False)
