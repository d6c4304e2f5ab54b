"""A web process made ready before it answers anyone.

gunicorn loads the portal once in its master (`preload_app`) and calls `warm` there, before it
forks the workers: every view module is imported, every project template compiled and the
release digest of kept fragments worked out (demos.fragments), and the workers inherit all
three. Without it each worker's first requests import and compile on the way,
and since `--max-requests` replaces workers all day long, those cold requests are a steady part
of the slowest answers under load, not a one-off at deploy time.

Nothing here may open a connection a worker would inherit: the URLconf and the template loader
touch neither the database nor Redis, and the database connections are closed at the end all
the same.
"""

from __future__ import annotations

import gc
from pathlib import Path


def project_templates() -> list[str]:
    """The names of the project's own templates (the `templates/` folder), sorted."""
    from django.template import engines

    names: set[str] = set()
    for folder in engines["django"].engine.dirs:
        root = Path(folder)
        names.update(path.relative_to(root).as_posix() for path in root.rglob("*.html"))
    return sorted(names)


def warm() -> int:
    """Import the views, compile the project's templates and freeze what is loaded: returns how
    many templates were compiled. A template that does not compile stops the start, loudly."""
    from django.db import connections
    from django.template import engines
    from django.urls import get_resolver

    from demos.fragments import release

    get_resolver().url_patterns  # noqa: B018 - reading it imports every view module
    engine = engines["django"]
    names = project_templates()
    for name in names:
        engine.get_template(name)  # kept by the cached loader, which the workers inherit
    release()  # the kept fragments' release digest: a few hundred files read, once
    connections.close_all()
    # Whatever the master holds now lives as long as the workers: keeping it out of the
    # collector's rounds spares their CPU and keeps the pages shared (copy-on-write).
    gc.freeze()
    return len(names)
