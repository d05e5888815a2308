"""Item media for the labeling widgets, straight to the browser.

The labeler page fetches each item's image, audio or video here (with the Jupyter login cookie
or a token), so it can preload and decode the next items without a kernel round trip. Images
are scaled down to the size of the view (``w``/``h``) and sent as JPEG or PNG; the original
size rides in ``X-Original-Width`` / ``X-Original-Height`` so boxes are drawn and exported in
image pixels.
"""

from __future__ import annotations

import asyncio
import io
import json
import mimetypes
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, Field
from sqlalchemy import select

from pai_lab.errors import BadInput, NotFound
from pai_lab.server.routing import Router

router = Router("labeling")

MAX_MEDIA_BYTES = 512 << 20  # larger files are refused with a message rather than read into memory
THUMB_MAX_SIDE = 8192


class MediaQuery(BaseModel):
    key: str = Field("source", description="the key of the item's data that holds the media URI")
    w: int = Field(0, ge=0, le=THUMB_MAX_SIDE, description="images: the view's width in pixels (0: original)")
    h: int = Field(0, ge=0, le=THUMB_MAX_SIDE, description="images: the view's height in pixels (0: original)")


@dataclass
class Media:
    body: bytes
    mime: str
    width: int | None = None
    height: int | None = None


def _item_source(req, workspace: str, task_ref: str, seq: str, key: str) -> tuple[str, dict]:
    from pai_lab.labeling import service as sv
    from pai_lab.labeling.tables import ItemRow

    if not seq.isdigit():
        raise BadInput(f"item must be a number (its seq), got {seq!r}", "item")
    with req.transaction() as s:
        task = sv.task_row(s, req.user, workspace, task_ref)
        data_text = s.scalar(select(ItemRow.data).where(ItemRow.task_id == task.id, ItemRow.seq == int(seq)))
        if data_text is None:
            raise NotFound(f"task {task.name!r} has no item {seq}", "item")
        options: dict = {}
        if task.dataset:
            from pai_lab.datasets.service import storage_options_for

            try:
                options = storage_options_for(s, req.user, workspace, task.dataset)
            except Exception:  # the dataset may have been deleted since; local media still work
                options = {}
    value = json.loads(data_text).get(key)
    if not isinstance(value, str) or not value:
        raise NotFound(f"item {seq} has no {key!r} in its data; the template reads media from that key", "key")
    return value, options


def _read(platform, uri: str, options: dict) -> tuple[bytes, str]:
    """The media bytes and a name to guess the type from."""
    from pai_lab.datasets.sources import Roots, filesystem, parse_object_uri, split_local_uri

    local = split_local_uri(uri)
    if local is not None:
        path = Path(local)
        roots = Roots.from_platform(platform)
        full = path if path.is_absolute() else roots.root_dir / path
        if not full.exists():
            raise NotFound(f"the file {uri} does not exist (moved or deleted?)", "source")
        real = roots.resolve(str(full))
        size = real.stat().st_size
        if size > MAX_MEDIA_BYTES:
            raise BadInput(f"{uri} is {size >> 20} MiB; files over {MAX_MEDIA_BYTES >> 20} MiB are not shown", "source")
        return real.read_bytes(), real.name
    scheme = uri.split("://", 1)[0].lower()
    if scheme in ("s3", "oss"):
        location = parse_object_uri(uri, options)
        fs = filesystem(location)
        try:
            path = f"{location.bucket}/{location.prefix}"
            size = fs.size(path)
            if size and size > MAX_MEDIA_BYTES:
                raise BadInput(f"{uri} is {size >> 20} MiB; files over {MAX_MEDIA_BYTES >> 20} MiB are not shown",
                               "source")
            with fs.open(path, "rb") as f:
                return f.read(), location.prefix
        except FileNotFoundError:
            raise NotFound(f"the object {uri} does not exist", "source") from None
    if scheme in ("http", "https"):
        import requests

        resp = requests.get(uri, timeout=30)
        if resp.status_code >= 400:
            raise NotFound(f"{uri} answered {resp.status_code}", "source")
        return resp.content, uri.rsplit("/", 1)[-1]
    raise BadInput(f"cannot read media from {uri!r}: use a local path, file://, s3://, oss:// or http(s)://", "source")


def _guess_mime(name: str, body: bytes) -> str:
    mime = mimetypes.guess_type(name)[0]
    if mime:
        return mime
    for magic, kind in ((b"\x89PNG", "image/png"), (b"\xff\xd8", "image/jpeg"), (b"GIF8", "image/gif"),
                        (b"RIFF", "audio/wav"), (b"ID3", "audio/mpeg"), (b"OggS", "audio/ogg")):
        if body.startswith(magic):
            return kind
    return "application/octet-stream"


def load_media(platform, uri: str, options: dict, width: int = 0, height: int = 0) -> Media:
    """Read one item's media; images are checked and, when a view size is given, scaled to fit it."""
    body, name = _read(platform, uri, options)
    mime = _guess_mime(name, body)
    if not mime.startswith("image/"):
        return Media(body, mime)
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(body))
        size = image.size
        fits = not (width and height) or (size[0] <= width and size[1] <= height)
        if fits:
            image.verify()  # a truncated or corrupt file fails here, not in the browser
            return Media(body, mime, *size)
        # Larger images are sent at the view's size: tens of kB that decode in a millisecond,
        # where a photo-sized PNG takes the page tens of ms to decode and scale at every paint.
        image.draft("RGB", (width, height))  # JPEG: decode at a reduced scale, much faster
        if image.mode not in ("RGB", "L", "RGBA", "LA"):
            image = image.convert("RGBA")
        # reducing_gap=1: shrink by whole factors with a box filter first (a few times faster than
        # filtering the full image), then a bilinear pass for the rest
        image.thumbnail((width, height), Image.Resampling.BILINEAR, reducing_gap=1.0)
    except UnidentifiedImageError:
        raise BadInput(f"{uri} is not an image file of a known format (corrupt?); skip the item as invalid",
                       "source") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadInput(f"{uri} is a damaged image ({exc}); skip the item as invalid", "source") from None
    out = io.BytesIO()
    if image.mode in ("RGBA", "LA", "P"):
        image.save(out, "PNG", compress_level=1)
        mime = "image/png"
    else:
        image.save(out, "JPEG", quality=88)
        mime = "image/jpeg"
    return Media(out.getvalue(), mime, *size)


@router.get("/workspaces/{workspace}/labeling/tasks/{task}/items/{seq}/media", name="label.item.media",
            summary="An item's image (scaled to the view), audio or video, for the labeling widgets",
            query=MediaQuery, raw=True)
async def item_media(req, workspace, task, seq, query: MediaQuery):
    def make() -> Media:
        uri, options = _item_source(req, workspace, task, seq, query.key)
        return load_media(req.platform, uri, options, query.w, query.h)

    media = await asyncio.get_running_loop().run_in_executor(None, make)
    handler = req.handler
    handler.set_header("Cache-Control", "private, max-age=600")
    if media.width:
        handler.set_header("X-Original-Width", str(media.width))
        handler.set_header("X-Original-Height", str(media.height))
    await handler.finish(media.body, set_content_type=media.mime)
