"""My demos' three sections, each read one page of prints at a time (demos.sales.row_cache).

Each section's query is the ORM's, from the visibility rule in `demos.access`, the section's
filter and its order; on PostgreSQL it is written once per process for each shape of reader
(demos.written_once), since building and compiling the three queries had been the largest part
of the page's CPU (3.5 of 15.6 ms on the benchmark's data set), PostgreSQL's answer a tenth of it.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from django.db import connection
from django.db.models import Q, QuerySet
from django.http import QueryDict

from demos.access import Visibility, demos_visible_to, visibility_of, visible_in_shape
from demos.models import IS_ENDED, IS_KEPT, OPEN
from demos.paging import Page
from demos.sales.row_cache import RowPrint, print_page, printed
from demos.written_once import Written

# Each section's filter, and its order: the one of the index that serves it (demos.models), so
# a page is read from the index in order and stops after it, however long the history.
SECTIONS: dict[str, tuple[Q, tuple[str, ...]]] = {
    "active": (Q(status__in=OPEN), ("-requested_at", "-pk")),
    "kept": (IS_KEPT, ("keep_until", "pk")),
    "ended": (IS_ENDED, ("-ended_at", "-pk")),
}
SECTION_TITLES = {"active": "Active", "kept": "Kept for later", "ended": "Ended"}
# Rows per page of each section. What runs now is what a person came for; what is kept or ended
# shows its latest few, and pages back for more. Each row costs about a millisecond to render.
SECTION_PAGE_SIZES = {"active": 25, "kept": 10, "ended": 10}

# The stand-in for the owner a manager narrows the list to (a username cannot hold NUL).
_OWNER = "\x00owner"


def section_pages(user: Any, params: QueryDict, *, owner: str = "") -> dict[str, Page[RowPrint]]:
    """Each section's page of prints for `user`, as `params` asks (`<section>_page`), narrowed
    to the demos of the person named `owner` when given (for those who see everyone's)."""
    shape, values = visibility_of(user)
    filled = {**values, _OWNER: owner}
    pages = {}
    for key in SECTIONS:
        if connection.vendor == "postgresql":
            written = _written(shape, key, by_owner=bool(owner))

            def read(start: int, count: int, written: Written = written) -> list[Any]:
                return written.rows(filled, count, start)

        else:
            read = _orm_reader(user, key, owner)
        pages[key] = print_page(
            read,
            user,
            marked=shape.everyone,
            params=params,
            param=f"{key}_page",
            size=SECTION_PAGE_SIZES[key],
        )
    return pages


def _section(demos: QuerySet[Any], key: str, owner: Any) -> QuerySet[Any]:
    """The prints of one section of `demos`, narrowed to `owner`'s when given."""
    if owner:
        demos = demos.filter(owner__username=owner)
    where, order = SECTIONS[key]
    return printed(demos).filter(where).order_by(*order)


@cache
def _written(shape: Visibility, key: str, *, by_owner: bool) -> Written:
    section = _section(visible_in_shape(shape), key, _OWNER if by_owner else "")
    return Written.of(section, paged=True)


def _orm_reader(user: Any, key: str, owner: str) -> Callable[[int, int], list[Any]]:
    """A section's rows as the ORM writes them for this request: elsewhere than on PostgreSQL
    (SQLite's cursor gives moments as text, which the ORM converts), and the reference the tests
    hold the written queries to."""
    prints = _section(demos_visible_to(user), key, owner)
    return lambda start, count: list(prints[start : start + count])
