"""``ds.preview()``: a paged view of a dataset version.

Images show as a grid of thumbnails that the server makes on first request and caches; text
and tables show as rows; audio and video get players. Only the current page is fetched, so
a 100k-item dataset opens as fast as a small one.
"""

from __future__ import annotations

import html
from concurrent.futures import ThreadPoolExecutor

import ipywidgets as w

MEDIA_FORMATS = {
    ".wav": "wav",
    ".mp3": "mp3",
    ".ogg": "ogg",
    ".flac": "flac",
    ".mp4": "mp4",
    ".webm": "webm",
    ".mov": "mov",
}


def _human(n: int | None) -> str:
    if n is None:
        return "size unknown"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def total_size(total_bytes: int, items) -> str:
    """The dataset's size as the manifest knows it: items registered from manifest lines may carry no size,
    which is not 0 B."""
    unknown = any(item.size is None for item in items)
    if unknown and not total_bytes:
        return "size unknown (not in the manifest)"
    return _human(total_bytes) + (" + items of unknown size" if unknown else "")


def caption(key: str, source: str | None, base: str) -> str:
    """An item's name relative to the dataset: its path under the dataset's folder or prefix, else its key
    when that is relative already, else the file name of an absolute path or URL."""
    base = (base or "").rstrip("/")
    for name in (key, source):
        if base and name and name.startswith(base + "/"):
            return name[len(base) + 1 :]
    if "://" in key or key.startswith(("/", "\\")) or key[1:3] in (":\\", ":/"):
        return key.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1] or key
    return key


class DatasetPreview(w.VBox):
    def __init__(self, dataset, *, version: int | None = None, page_size: int = 24, thumb_size: int = 96):
        self.dataset = dataset
        self.version = version
        self.page_size = page_size
        self.thumb_size = thumb_size
        self.page_number = 0
        self.total = 0
        self._thumbs: dict[tuple[int, int], bytes] = {}
        self.header = w.HTML()
        self.body = w.Box()
        self.prev_button = w.Button(description="◀ prev", layout=w.Layout(width="90px"))
        self.next_button = w.Button(description="next ▶", layout=w.Layout(width="90px"))
        self.page_label = w.Label()
        self.prev_button.on_click(lambda _b: self.show_page(self.page_number - 1))
        self.next_button.on_click(lambda _b: self.show_page(self.page_number + 1))
        pager = w.HBox([self.prev_button, self.page_label, self.next_button])
        super().__init__([self.header, self.body, pager])
        self.show_page(0)

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))

    def show_page(self, number: int) -> None:
        number = max(0, number)
        page = self.dataset.page(number * self.page_size, self.page_size, self.version)
        self.total = page.total
        if number >= self.pages:
            return
        self.page_number = number
        self.items = page.items
        info = self.dataset.info
        self.header.value = (
            f"<b>{html.escape(info.name)}</b> &middot; {html.escape(info.data_type)} &middot; "
            f"{page.total:,} items &middot; {html.escape(total_size(info.total_bytes, page.items))}"
            f" &middot; version "
            f"{page.version} of {info.latest_version}"
        )
        self.page_label.value = f" page {number + 1} of {self.pages} "
        self.prev_button.disabled = number == 0
        self.next_button.disabled = number + 1 >= self.pages
        kind = info.data_type
        if kind == "image":
            self.body.children = [self._grid(page)]
        elif kind in ("audio", "video"):
            self.body.children = [self._players(page)]
        else:
            self.body.children = [self._rows(page)]

    def _thumbnail(self, index: int) -> bytes:
        key = (self.version or 0, index)
        if key not in self._thumbs:
            try:
                self._thumbs[key] = self.dataset.thumbnail(index, self.version, self.thumb_size)
            except Exception:  # noqa: BLE001 - a broken image shows as an empty tile, not a failed preview
                self._thumbs[key] = b""
        return self._thumbs[key]

    def _grid(self, page) -> w.Widget:
        with ThreadPoolExecutor(8) as pool:
            images = list(pool.map(self._thumbnail, [item.index for item in page.items]))
        tiles = []
        base = self.dataset.info.source_uri
        for item, data in zip(page.items, images):
            image = w.Image(
                value=data, format="png", layout=w.Layout(width=f"{self.thumb_size}px", height=f"{self.thumb_size}px")
            )
            name = caption(item.key, item.source, base)
            tooltip = f"{item.source or item.key} ({_human(item.size)})"  # the full path, on hover
            caption_html = w.HTML(
                f"<div style='font-size:10px;width:{self.thumb_size}px;overflow:hidden;"
                f"text-overflow:ellipsis;white-space:nowrap;direction:rtl;text-align:left'"
                f" title='{html.escape(tooltip)}'><bdi>{html.escape(name)}</bdi></div>"
                f"<div style='font-size:9px;color:#666'>{html.escape(_human(item.size))}</div>"
            )
            tiles.append(w.VBox([image, caption_html]))
        return w.GridBox(
            tiles, layout=w.Layout(grid_template_columns=f"repeat(auto-fill, {self.thumb_size + 8}px)", width="100%")
        )

    def _rows(self, page) -> w.Widget:
        frame = self._frame(page)
        for column in ("source", "key"):
            if column in frame:  # long texts are cut for the grid; the item keeps the whole text
                frame[column] = frame[column].astype(str).str.slice(0, 200)
        return w.HTML(frame.to_html(index=False))

    def _frame(self, page):
        from pai_lab.datasets.readers import items_frame

        frame = items_frame(page.items)
        keep = [c for c in frame.columns if c not in ("stamp",)]
        return frame[keep]

    def _players(self, page) -> w.Widget:
        players = []
        for item in page.items[: min(len(page.items), 8)]:  # players are heavy; a few per page
            ext = "." + (item.source or "").rsplit(".", 1)[-1].lower()
            fmt = MEDIA_FORMATS.get(ext)
            if fmt is None:
                players.append(w.HTML(html.escape(caption(item.key, item.source, self.dataset.info.source_uri))))
                continue
            data = self.dataset.read_bytes(item, self.version)
            player = (w.Audio if self.dataset.info.data_type == "audio" else w.Video)(
                value=data, format=fmt, autoplay=False
            )
            name = caption(item.key, item.source, self.dataset.info.source_uri)
            players.append(
                w.VBox(
                    [w.HTML(f"<span title='{html.escape(item.source or item.key)}'>{html.escape(name)}</span>"), player]
                )
            )
        return w.VBox(players)
