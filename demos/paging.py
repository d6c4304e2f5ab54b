"""Pages of a long list without counting it.

A list of a year of demos is paged by reading one row more than a page holds: that row says
whether there is a next page. No COUNT runs, so a page costs the same with 100 demos or 100,000,
and the query stays an index scan that stops early (LIMIT) instead of visiting every row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from django.db.models import QuerySet
from django.http import QueryDict

PAGE_SIZE = 50
# Beyond this a page number is refused as a typo rather than scanned for: 500 pages of 50.
MAX_PAGE = 500


@dataclass(frozen=True)
class Page[T]:
    items: Sequence[T]
    number: int
    has_next: bool
    param: str  # the query parameter that carries the page number
    # The query strings of the neighbouring pages, the other parameters kept ("" on the edges).
    previous_query: str = ""
    next_query: str = ""

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def is_paged(self) -> bool:
        return self.has_next or self.has_previous

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


def page_number(params: QueryDict, param: str) -> int:
    """The page asked for in `param`; anything unreadable or out of range means the first."""
    raw = params.get(param, "")
    if not raw.isascii() or not raw.isdigit():
        return 1
    number = int(raw)
    return number if 1 <= number <= MAX_PAGE else 1


def _query_for(params: QueryDict, param: str, number: int) -> str:
    query = params.copy()
    if number > 1:
        query[param] = str(number)
    else:
        query.pop(param, None)
    return "?" + query.urlencode() if query else "?"


def page_of(
    queryset: QuerySet, params: QueryDict, param: str = "page", size: int = PAGE_SIZE
) -> Page:
    """The page of `queryset` (already ordered) that `params[param]` asks for."""

    def read(start: int, count: int) -> list:
        return list(queryset[start : start + count])

    return page_read(read, params, param, size)


def page_read[T](
    read: Callable[[int, int], list[T]], params: QueryDict, param: str, size: int
) -> Page[T]:
    """The page that `params[param]` asks for of a list read by `read(start, count)`."""
    number = page_number(params, param)
    rows = read((number - 1) * size, size + 1)
    has_next = len(rows) > size
    return Page(
        items=rows[:size],
        number=number,
        has_next=has_next,
        param=param,
        previous_query=_query_for(params, param, number - 1) if number > 1 else "",
        next_query=_query_for(params, param, number + 1) if has_next else "",
    )
