"""``scenedex events`` and ``scenedex webhooks``: the event feed and the webhook endpoints from the
command line, on the use cases the API's ``/v1/events`` and ``/v1/webhooks`` routes call
(``app.events``, ``app.webhooks``). Without ``--owner-id`` a command acts in the admins' scope
(every owner's events; admin endpoints, and every endpoint for reads). ``scenedex webhooks
bench`` measures delivery (``scenedex.tools.webhook_bench``)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from scenedex.domain.request import parse_uuid
from scenedex.scripts.common import JsonOption, build_application, parse_owner, print_json, user_errors

events_app = typer.Typer(help="The event feed (what happened, in order).", no_args_is_help=True)
webhooks_app = typer.Typer(help="Webhook endpoints and their deliveries.", no_args_is_help=True)
ScopeOption = Annotated[
    str | None, typer.Option("--owner-id", help="Owner (tenant) UUID; absent: the admins' scope.")
]


def _scope(owner_id: str | None) -> Any:
    return parse_owner(owner_id) if owner_id else None


@events_app.command("list")
def events_list(
    owner_id: ScopeOption = None,
    after: Annotated[str | None, typer.Option(help="The next_cursor of the last page.")] = None,
    types: Annotated[str | None, typer.Option(help="Event types, comma separated.")] = None,
    limit: Annotated[int, typer.Option(help="Most events.")] = 100,
) -> None:
    """Events after a cursor, one JSON object per line, then the next cursor."""
    with user_errors():
        page = build_application().events.page(
            _scope(owner_id), after=after, types=[types] if types else (), limit=limit
        )
    for event in page.events:
        print(json.dumps({"id": str(event.id), "owner_id": str(event.owner_id) if event.owner_id else None,
                          **event.payload()}))  # fmt: skip
    print(json.dumps({"next_cursor": page.next_cursor}))


@events_app.command("backlog")
def events_backlog(json_output: JsonOption = False) -> None:
    """The age of the oldest event still waiting for a webhook delivery (seconds; none: 0)."""
    with user_errors():
        age = build_application().events.oldest_undelivered_age_s()
    if json_output:
        print_json({"oldest_undelivered_age_s": age})
    else:
        print(f"oldest undelivered event: {age:.1f} s old" if age is not None else "nothing undelivered")


def _endpoint(endpoint: Any) -> dict[str, Any]:
    keys = ("url", "event_types", "description", "enabled", "disabled_reason")
    data: dict[str, Any] = {
        "id": str(endpoint.id),
        "owner_id": str(endpoint.owner_id) if endpoint.owner_id else None,
    }
    data.update({k: getattr(endpoint, k) for k in keys})
    data["event_types"] = list(endpoint.event_types)
    data["failing_since"] = endpoint.failing_since.isoformat() if endpoint.failing_since else None
    return data


@webhooks_app.command("list")
def webhooks_list(owner_id: ScopeOption = None) -> None:
    """The endpoints (admins' scope: all of them, failing and disabled first), one per line."""
    with user_errors():
        for endpoint in build_application().webhooks.list(_scope(owner_id)):
            print(json.dumps(_endpoint(endpoint)))


@webhooks_app.command("create")
def webhooks_create(
    url: Annotated[str, typer.Argument(help="https URL of the receiver.")],
    owner_id: ScopeOption = None,
    types: Annotated[str | None, typer.Option(help="Event types, comma separated (none: all).")] = None,
    description: Annotated[str, typer.Option(help="What it is for.")] = "",
) -> None:
    """Create an endpoint; prints it with its secret (shown once)."""
    chosen = [t for t in (types or "").split(",") if t]
    with user_errors():
        made = build_application().webhooks.create(
            _scope(owner_id), url, types=chosen, description=description
        )
    print_json({**_endpoint(made.endpoint), "secret": made.secret})


@webhooks_app.command("deliveries")
def webhooks_deliveries(
    webhook_id: Annotated[str, typer.Argument(help="Endpoint id.")],
    owner_id: ScopeOption = None,
    status: Annotated[str | None, typer.Option(help="pending | delivered | failed | cancelled")] = None,
    limit: Annotated[int, typer.Option(help="Most deliveries.")] = 50,
) -> None:
    """The endpoint's deliveries, newest first, one per line."""
    with user_errors():
        endpoint = parse_uuid(webhook_id, "webhook id")
        found = build_application().webhooks.deliveries(
            _scope(owner_id), endpoint, status=status, limit=limit
        )
    for d in found:
        print(json.dumps({"id": str(d.id), "webhook_id": d.webhook_id, "event_type": d.event_type,
                          "status": d.status.value, "attempts": d.attempts, "last_status": d.last_status,
                          "last_error": d.last_error}))  # fmt: skip


@webhooks_app.command("bench")
def webhooks_bench(
    events: Annotated[int, typer.Option(help="Events to record.")] = 10_000,
    endpoints: Annotated[int, typer.Option(help="Endpoints (one per owner).")] = 50,
    threads: Annotated[int, typer.Option(help="Worker threads delivering.")] = 8,
    rate: Annotated[float, typer.Option(help="Events per second (0: all at once).")] = 0.0,
    batch: Annotated[int, typer.Option(help="Events per transaction.")] = 100,
) -> None:
    """Deliver events to a local receiver; print events/s and the p50/p99 delay (JSON)."""
    from scenedex.settings import Settings
    from scenedex.tools.webhook_bench import run_webhook_bench

    print_json(
        run_webhook_bench(
            Settings(), events=events, endpoints=endpoints, threads=threads, rate=rate, batch=batch
        )
    )
