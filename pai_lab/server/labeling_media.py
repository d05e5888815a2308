"""Item media for the labeling widgets, straight to the browser.

The labeler page fetches each item's image, audio or video here (with the Jupyter login cookie
or a token), so it can preload and decode the next items without a kernel round trip. Images
are scaled down to the size of the view (``w``/``h``, see :mod:`pai_lab.labeling.media`); the
original size rides in ``X-Original-Width`` / ``X-Original-Height`` so boxes are drawn and
exported in image pixels.
"""

from __future__ import annotations

import asyncio

from pydantic import BaseModel, Field

from pai_lab.labeling import media
from pai_lab.server.routing import Router

router = Router("labeling")

THUMB_MAX_SIDE = 8192


class MediaQuery(BaseModel):
    key: str = Field("source", description="the key of the item's data that holds the media URI")
    w: int = Field(0, ge=0, le=THUMB_MAX_SIDE, description="images: the view's width in pixels (0: original)")
    h: int = Field(0, ge=0, le=THUMB_MAX_SIDE, description="images: the view's height in pixels (0: original)")


@router.get(
    "/workspaces/{workspace}/labeling/tasks/{task}/items/{seq}/media",
    name="label.item.media",
    summary="An item's image (scaled to the view), audio or video, for the labeling widgets",
    query=MediaQuery,
    raw=True,
)
async def item_media(req, workspace, task, seq, query: MediaQuery):
    shown = await asyncio.get_running_loop().run_in_executor(
        None, media.item_view, req.platform, req.user, workspace, task, seq, query.key, query.w, query.h
    )
    handler = req.handler
    handler.set_header("Cache-Control", "private, max-age=600")
    if shown.width:
        handler.set_header("X-Original-Width", str(shown.width))
        handler.set_header("X-Original-Height", str(shown.height))
    await handler.finish(shown.body, set_content_type=shown.mime)
