"""The portal's SVG icons: `{% icon "copy" %}` for the interface, `{% product_icon value %}` for
a demo template's picture.

Icons are symbols of one sprite (static/img/icons.svg) referenced by URL, not emoji or font
glyphs: those render as empty boxes where no emoji font is installed. The sprite's URL comes from
the static storage, so it is the hashed name in production; a same-origin `<use>` is allowed by
the Content-Security-Policy's img-src 'self'.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from django import template
from django.core.signals import setting_changed
from django.templatetags.static import static
from django.utils.html import format_html
from django.utils.safestring import SafeString

register = template.Library()

SPRITE = "img/icons.svg"

# Product icons a demo template may show, with the name an admin picks from.
PRODUCT_ICONS: dict[str, str] = {
    "shop": "Shop",
    "chart": "Chart",
    "database": "Database",
    "notebook": "Notebook",
    "cloud": "Cloud",
    "lock": "Lock",
    "cube": "Cube",
    "rocket": "Rocket",
    "gear": "Gear",
    "chat": "Chat",
    "search": "Search",
    "globe": "Globe",
}
# Shown for a template whose icon is not one of the names (older templates hold an emoji).
DEFAULT_PRODUCT_ICON = "cube"

INTERFACE_ICONS = frozenset(
    {
        *("external", "copy", "check", "clock", "pause", "play", "trash", "archive"),
        *("share", "mail", "user", "warning", "info", "plus", "arrow-left", "arrow-right"),
    }
)
ICONS = INTERFACE_ICONS | PRODUCT_ICONS.keys()


# Kept per process: a long list shows hundreds of icons, and each would ask the static files'
# manifest for the sprite's address again. Dropped when the static settings change (tests).
@cache
def icon_svg(name: str, *, size: int | None = None) -> SafeString:
    """The markup of one icon. Decorative: the text next to it says what it means. `size`
    (pixels) is for pages without the portal's stylesheet, such as the admin site."""
    if name not in ICONS:
        raise ValueError(f"There is no icon named {name!r} in {SPRITE}.")
    href = f"{static(SPRITE)}#{name}"
    if size is None:
        return format_html(
            '<svg class="icon" aria-hidden="true" focusable="false"><use href="{}"></use></svg>',
            href,
        )
    return format_html(
        '<svg class="icon" width="{}" height="{}" aria-hidden="true" focusable="false">'
        '<use href="{}"></use></svg>',
        size,
        size,
        href,
    )


def product_icon_name(value: str) -> str:
    """The product icon a template's stored `icon` shows."""
    return value if value in PRODUCT_ICONS else DEFAULT_PRODUCT_ICON


@register.simple_tag
def icon(name: str) -> SafeString:
    """`{% icon "external" %}`: an interface icon."""
    return icon_svg(name)


@register.simple_tag
def product_icon(value: str) -> SafeString:
    """`{% product_icon template.icon %}`: a template's icon, the default one if unknown."""
    return icon_svg(product_icon_name(value))


def _static_settings_changed(*, setting: str, **kwargs: Any) -> None:
    if setting in ("STATIC_URL", "STORAGES"):
        icon_svg.cache_clear()


setting_changed.connect(_static_settings_changed, dispatch_uid="demos.icons.static-settings")
