"""The web process is warmed before it answers anyone (portal/warm.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.template import TemplateSyntaxError, engines
from django.test import override_settings

from portal.warm import project_templates, warm


@pytest.fixture
def unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()  # the test process goes on collecting as before


def _cached(name: str) -> bool:
    loader = engines["django"].engine.template_loaders[0]  # Django's cached loader
    return name in loader.get_template_cache


def test_every_project_template_is_compiled_and_kept(unfrozen: None) -> None:
    names = project_templates()
    on_disk = sorted(
        path.relative_to(settings.BASE_DIR / "templates").as_posix()
        for path in (settings.BASE_DIR / "templates").rglob("*.html")
    )
    assert names == on_disk
    assert "base.html" in names

    assert warm() == len(names)
    assert all(_cached(name) for name in names)
    assert gc.get_freeze_count() > 0


def test_a_template_that_does_not_compile_stops_the_start(tmp_path: Path, unfrozen: None) -> None:
    (tmp_path / "fine.html").write_text("<p>{{ name }}</p>")
    (tmp_path / "broken.html").write_text("{% if %}")
    engine = {**settings.TEMPLATES[0], "DIRS": [tmp_path], "APP_DIRS": False}
    with override_settings(TEMPLATES=[engine]):
        assert project_templates() == ["broken.html", "fine.html"]
        with pytest.raises(TemplateSyntaxError):
            warm()
