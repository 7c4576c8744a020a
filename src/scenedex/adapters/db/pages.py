"""Keyset pages (the API's cursors, ``api.paging``): the rows strictly after a sort key, in
that order, so a row deleted or added between two pages skips nothing and repeats nothing.

``after(query, order, key, limit)`` takes the sort as ``(column, descending)`` pairs, e.g.
``[(created_at, True), (id, True)]`` (newest first) or ``[(size, True), (cluster_id, False)]``
(largest first, ties by id): the condition is the lexicographic "comes after" of the key (a
row tuple comparison when every column sorts the same way, which an index on those columns
serves; else its ``OR`` expansion).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

Order = Sequence[tuple[sa.ColumnElement[Any], bool]]
"""The sort: ``(column, descending)`` pairs, the last one unique (the id)."""


def comes_after(order: Order, key: Sequence[Any]) -> sa.ColumnElement[bool]:
    """The condition "the row sorts after ``key``" (one value per column of ``order``)."""
    columns = [column for column, _ in order]
    if all(descending for _, descending in order):
        return sa.tuple_(*columns) < sa.tuple_(*key)
    if not any(descending for _, descending in order):
        return sa.tuple_(*columns) > sa.tuple_(*key)
    terms = []
    for i, (column, descending) in enumerate(order):
        ties = [columns[j] == key[j] for j in range(i)]
        terms.append(sa.and_(*ties, column < key[i] if descending else column > key[i]))
    return sa.or_(*terms)


def after(query: sa.Select[Any], order: Order, key: Sequence[Any] | None, limit: int) -> sa.Select[Any]:
    """``query`` sorted by ``order``, its first ``limit`` rows after ``key`` (None: from the
    first row)."""
    if key is not None:
        query = query.where(comes_after(order, key))
    return query.order_by(*(column.desc() if descending else column for column, descending in order)).limit(
        limit
    )
