"""Queries per request in the running portal, for the benchmark only (`bench/settings.py` adds
this middleware when `BENCH_COUNT_QUERIES` is set; the product's settings never do).

Every statement a request sends through Django's connection is counted with an execute wrapper,
from the first middleware to the last byte. A rendered response carries its count in the
`X-Bench-Queries` header. A streamed response (the CSV exports) runs most of its queries while
its body is sent, after the headers are gone, so its count is kept in the cache instead, under
the id the client sent in `X-Bench-Request`, for the benchmark to read afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, HttpResponseBase, StreamingHttpResponse

HEADER = "X-Bench-Queries"
REQUEST_HEADER = "X-Bench-Request"


def cache_key(request_id: str) -> str:
    return f"bench-queries:{request_id}"


class Counter:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        self.count += 1
        return execute(sql, params, many, context)


class QueryCountMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        counter = Counter()
        with connection.execute_wrapper(counter):
            response = self.get_response(request)
        if isinstance(response, StreamingHttpResponse):
            request_id = request.headers.get(REQUEST_HEADER, "")
            response.streaming_content = _counted(response.streaming_content, counter, request_id)
        else:
            response[HEADER] = str(counter.count)
        return response


def _counted(body: Iterator[Any], counter: Counter, request_id: str) -> Iterator[Any]:
    # Runs in the thread that sends the body, on the same connection as the view.
    with connection.execute_wrapper(counter):
        yield from body
    if request_id:
        cache.set(cache_key(request_id), counter.count, 600)
