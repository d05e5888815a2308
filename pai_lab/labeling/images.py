"""Image sizes and encodings for the labelers' views: the size an image is shown at, the prepared
levels it is cut from, and decoding and encoding with Pillow (imported when first used)."""

from __future__ import annotations

import io

from pai_lab.errors import BadInput

LEVELS = (512, 768, 1024, 1536, 2048)  # long sides of the kept copies, in steps a view scales down from cheaply


def fit_size(width: int, height: int, view_w: int, view_h: int) -> tuple[int, int]:
    """The size an image is shown at in a view (never enlarged; 0 in the view: the original)."""
    if not (view_w and view_h) or (width <= view_w and height <= view_h):
        return width, height
    scale = min(view_w / width, view_h / height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def level_size(width: int, height: int, level: int) -> tuple[int, int]:
    return fit_size(width, height, level, level)


def level_for(width: int, height: int, target: tuple[int, int]) -> int | None:
    """The smallest prepared level a view of ``target`` can be cut from (None: use the original)."""
    for level in LEVELS:
        if level >= max(width, height):
            return None
        w, h = level_size(width, height, level)
        if w >= target[0] and h >= target[1]:
            return level
    return None


def bad_image(uri: str, exc: Exception) -> BadInput:
    from PIL import UnidentifiedImageError

    if isinstance(exc, UnidentifiedImageError):
        return BadInput(f"{uri} is not an image file of a known format (corrupt?); skip the item as invalid", "source")
    return BadInput(f"{uri} is a damaged image ({exc}); skip the item as invalid", "source")


def encode(image, alpha: bool) -> tuple[bytes, str]:
    out = io.BytesIO()
    if alpha:
        image.save(out, "PNG", compress_level=1)
        return out.getvalue(), "image/png"
    image.save(out, "JPEG", quality=88)
    return out.getvalue(), "image/jpeg"


def has_alpha(image) -> bool:
    """Whether the image has transparency (then it is sent as PNG, never JPEG)."""
    return image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info


def normalized(image):
    """RGB or RGBA (or grey): what JPEG and PNG both take and resizing handles."""
    if image.mode in ("RGB", "L", "RGBA", "LA"):
        return image
    return image.convert("RGBA" if has_alpha(image) else "RGB")


def scaled(image, size: tuple[int, int]):
    from PIL import Image

    # reducing_gap=1: shrink by whole factors with a box filter first (a few times faster than
    # filtering the full image), then a bilinear pass for the rest
    return image.resize(size, Image.Resampling.BILINEAR, reducing_gap=1.0)
