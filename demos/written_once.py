"""Queries the ORM writes once per process and the views run many times, their values filled in.

On the busiest pages the ORM took longer to build and compile a query than PostgreSQL took to
answer it (the capacity picture: 3 ms of CPU against 0.2). A query whose shape never changes is
therefore written from its query set once, with a *stand-in* where each value that changes
goes, and each run fills the stand-ins in. The rules stay in the query sets that define them;
only their text is kept.

A stand-in is anything the ORM passes through to the parameters unchanged and that no real value
equals: an `object()` in a `RawSQL`'s parameters, or a number or text no row can hold where a
field prepares the value first (`STAND_IN_ID`). A list of ids is one parameter (`in_id_list`), so
the text is the same however long the list.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import BooleanField, Model, QuerySet
from django.db.models.expressions import RawSQL

# A stand-in for an id where a field prepares the value (an int): no row has a negative id.
STAND_IN_ID = -7_242_101


def in_id_list(column: str) -> str:
    """SQL: `column` is one of a list of ids given as one parameter (`id_list`)."""
    if connection.vendor == "postgresql":
        return f"{column} = ANY(%s::bigint[])"
    return f"{column} IN (SELECT value FROM json_each(%s))"  # noqa: S608 - a name, no value


def id_list(ids: Iterable[int]) -> Any:
    """A list of ids as one query parameter: an array on PostgreSQL, JSON text on SQLite."""
    ordered = sorted(ids)
    return ordered if connection.vendor == "postgresql" else json.dumps(ordered)


def pk_in(model: type[Model], ids: Any) -> RawSQL:
    """A condition for a query set of `model`: its id is one of `ids` (from `id_list`, or a
    stand-in for one)."""
    quote = connection.ops.quote_name
    column = f"{quote(model._meta.db_table)}.{quote(model._meta.pk.column)}"
    # Names from the model; the list is the one parameter.
    return RawSQL(in_id_list(column), (ids,), output_field=BooleanField())  # noqa: S611


@dataclass(frozen=True)
class Written:
    """A query's text and its parameters, stand-ins among them."""

    sql: str
    params: tuple[Any, ...]

    @classmethod
    def of(cls, queryset: QuerySet[Any], *, paged: bool = False) -> Written:
        """`queryset`'s query; `paged` adds a LIMIT and an OFFSET, given last when it runs
        (slicing a query set writes them into the text)."""
        sql, params = queryset.query.sql_with_params()
        return cls(f"{sql} LIMIT %s OFFSET %s" if paged else sql, tuple(params))

    def filled(self, values: Mapping[Any, Any], *extra: Any) -> list[Any]:
        """The parameters with each stand-in replaced by its value, then `extra`."""
        return [
            values.get(param, param) if isinstance(param, Hashable) else param
            for param in self.params
        ] + list(extra)

    def rows(self, values: Mapping[Any, Any], *extra: Any) -> list[tuple[Any, ...]]:
        with connection.cursor() as cursor:
            cursor.execute(self.sql, self.filled(values, *extra))
            return cursor.fetchall()
