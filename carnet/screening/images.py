"""Images (PNG, JPEG, GIF) re-encoded by Pillow from their pixels alone: metadata (EXIF with GPS,
XMP, comments, text chunks) and anything appended to the file are gone from the stored copy, and a
decompression bomb is refused from its header, before any pixel is decoded."""

from __future__ import annotations

import io
import warnings

from PIL import Image, ImageOps, UnidentifiedImageError

from carnet.screening.sniff import GIF, JPEG, PNG
from carnet.screening.verdict import Refused

_PILLOW_FORMATS = {PNG: "PNG", JPEG: "JPEG", GIF: "GIF"}
_JPEG_QUALITY = 92  # re-encoding costs a little quality; documents stay legible


def reencode_image(data: bytes, content_type: str, max_pixels: int) -> bytes:
    """The image re-encoded without metadata, or refused (bomb, truncated, animated, corrupt)."""
    pillow_format = _PILLOW_FORMATS[content_type]
    with warnings.catch_warnings():
        # Pillow's own bomb guard warns, then raises, from the declared size: both are refusals.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data), formats=[pillow_format]) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise Refused(
                        "decompression-bomb",
                        f"the image declares {width}x{height} pixels, more than {max_pixels}",
                    )
                if getattr(image, "n_frames", 1) > 1:
                    raise Refused("animated-image", "animated images are not accepted")
                image.load()  # a truncated or corrupt image fails here
                upright = ImageOps.exif_transpose(image)  # keep what the viewer saw, drop EXIF
                return _pixels_only(upright, pillow_format)
        except Refused:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise Refused("decompression-bomb", "the image declares too many pixels") from None
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError):
            raise Refused("malformed", "the image is truncated or corrupt") from None


def _pixels_only(image: Image.Image, pillow_format: str) -> bytes:
    """A new image from the pixels (and palette, transparency) alone, saved in the same format."""
    clean = Image.frombytes(image.mode, image.size, image.tobytes())
    palette = image.getpalette()
    if image.mode in ("P", "PA") and palette is not None:
        clean.putpalette(palette)
    options: dict[str, object] = {}
    transparency = image.info.get("transparency")
    if transparency is not None and pillow_format in ("PNG", "GIF"):
        options["transparency"] = transparency
    if pillow_format == "JPEG":
        if clean.mode not in ("L", "RGB", "CMYK"):
            clean = clean.convert("RGB")
        options["quality"] = _JPEG_QUALITY
    out = io.BytesIO()
    clean.save(out, format=pillow_format, **options)
    return out.getvalue()
