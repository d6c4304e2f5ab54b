"""Settings for benchmark runs only: the portal's own settings, plus a URLconf with the
comparison views, so the product itself carries no benchmark-only routes."""

import os
from pathlib import Path

from portal.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"

# Each run collects the static files into its own scratch directory: the manifest storage of a
# production configuration needs them collected, and the checkout must stay untouched.
if os.environ.get("BENCH_STATIC_ROOT"):
    STATIC_ROOT = Path(os.environ["BENCH_STATIC_ROOT"])

# Pages at scale count each request's queries (bench/query_count.py). Outermost, so the
# session and user loading of the middleware below are counted too.
if os.environ.get("BENCH_COUNT_QUERIES"):
    MIDDLEWARE = ["bench.query_count.QueryCountMiddleware", *MIDDLEWARE]  # noqa: F405
