"""Small uploaded pictures (the portal's logo, salespeople's photos), checked and re-encoded.

An upload is trusted by what it decodes to, not by its name or the type the browser claims: it
must open as PNG, JPEG or WebP, and it is always re-encoded as PNG at a small size. Re-encoding
drops whatever else the file carried (EXIF with a phone's location, comments, trailing bytes),
so what the portal serves is only pixels it drew itself.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from PIL import Image, ImageOps, UnidentifiedImageError

ACCEPTED_FORMATS = frozenset({"PNG", "JPEG", "WEBP"})
MAX_UPLOAD_BYTES = 500 * 1024
# Beyond this many pixels a small file can still unpack into a huge image (a "decompression
# bomb"); nothing a logo or a face needs comes close.
MAX_PIXELS = 25_000_000
LOGO_MAX_HEIGHT = 256
LOGO_MAX_WIDTH = 1024
PHOTO_SIZE = 256
STORED_TYPE = "image/png"

_REFUSAL = "This file is not a picture the portal can use: upload a PNG, JPEG or WebP image."


@dataclass(frozen=True)
class CheckedImage:
    """An image as the portal keeps it: PNG bytes it encoded itself."""

    data: bytes
    content_type: str
    width: int
    height: int


def _open(upload: UploadedFile) -> Image.Image:
    if upload.size is not None and upload.size > MAX_UPLOAD_BYTES:
        raise ValidationError(
            f"This picture is {upload.size // 1024} KB; the most the portal takes is "
            f"{MAX_UPLOAD_BYTES // 1024} KB. Save it smaller and upload it again.",
            code="too_large",
        )
    raw = upload.read(MAX_UPLOAD_BYTES + 1)
    if len(raw) > MAX_UPLOAD_BYTES:
        raise ValidationError(
            f"This picture is larger than {MAX_UPLOAD_BYTES // 1024} KB, the most the portal "
            "takes. Save it smaller and upload it again.",
            code="too_large",
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(raw), formats=sorted(ACCEPTED_FORMATS))
            if image.width * image.height > MAX_PIXELS:
                raise ValidationError(_REFUSAL, code="too_many_pixels")
            image.load()  # decodes every pixel: a truncated or forged file fails here
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Warning) as exc:
        raise ValidationError(_REFUSAL, code="not_an_image") from exc
    except Image.DecompressionBombError as exc:
        raise ValidationError(_REFUSAL, code="too_many_pixels") from exc
    # A phone's photo may be stored sideways with a note to turn it; turn it before the note goes.
    return ImageOps.exif_transpose(image)


def _as_png(image: Image.Image) -> CheckedImage:
    if image.mode not in ("RGB", "RGBA"):
        has_alpha = image.mode in ("LA", "PA") or "transparency" in image.info
        image = image.convert("RGBA" if has_alpha else "RGB")
    out = io.BytesIO()
    # A fresh image object with no `info`: nothing of the upload's metadata is written back.
    clean = Image.new(image.mode, image.size)
    clean.paste(image)
    clean.save(out, format="PNG", optimize=True)
    return CheckedImage(out.getvalue(), STORED_TYPE, clean.width, clean.height)


def checked_logo(upload: UploadedFile) -> CheckedImage:
    """The upload as a logo: at most `LOGO_MAX_HEIGHT` pixels high, proportions kept."""
    image = _open(upload)
    image.thumbnail((LOGO_MAX_WIDTH, LOGO_MAX_HEIGHT), Image.Resampling.LANCZOS)
    return _as_png(image)


def checked_photo(upload: UploadedFile) -> CheckedImage:
    """The upload as a profile photo: cropped to a centred square, `PHOTO_SIZE` pixels wide."""
    image = _open(upload)
    side = min(image.width, image.height, PHOTO_SIZE)
    square = ImageOps.fit(image, (side, side), Image.Resampling.LANCZOS)
    return _as_png(square)
