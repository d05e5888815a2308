"""`ds.preview()` on a real `pai server`: true sizes, captions relative to the dataset, full paths on hover."""

from __future__ import annotations

import html
import re
from pathlib import Path

from pai_lab.widgets.dataset_preview import _human


def _tiles(panel):
    grid = panel.body.children[0]
    return [tile.children[1].value for tile in grid.children]


def test_sample_preview_shows_true_sizes_and_names_relative_to_the_dataset(live_server, unique_name):
    ws = live_server.client().create_workspace(unique_name("pv"))
    ds = ws.datasets.register("digits", "sample://digits")
    folder = Path(ds.info.source_uri)
    files = sorted(folder.rglob("*.png"))
    assert len(files) == 1797
    total = sum(f.stat().st_size for f in files)
    assert ds.info.total_bytes == total and "0 B" not in _human(total)

    panel = ds.preview(page_size=6)
    assert f"1,797 items &middot; {_human(total)} &middot; version 1" in panel.header.value
    assert "<td>" + _human(total) + "</td>" in ds._repr_html_()
    tiles = _tiles(panel)
    assert len(tiles) == 6
    names = []
    for item, tile in zip(panel.items, tiles):
        relative = Path(item.source).relative_to(folder).as_posix()  # like "3/0042.png"
        name = re.search(r"<bdi>(.*?)</bdi>", tile).group(1)
        assert name == relative and str(folder) not in name
        assert f"title='{html.escape(item.source)} ({_human(item.size)})'" in tile  # the full path on hover
        assert item.size == Path(item.source).stat().st_size and f">{_human(item.size)}</div>" in tile
        names.append(name)
    assert len(set(names)) == 6  # six different captions, not one cut-off path


def test_items_without_sizes_say_so_and_absolute_paths_show_their_file_name(live_server, unique_name, tmp_path):
    ws = live_server.client().create_workspace(unique_name("pv"))
    folder = tmp_path / "<odd>"  # inside the server's allowed folders; the files need not exist
    lines = [{"data": {"source": str(folder / f"img_{i}.png")}} for i in range(3)]
    ds = ws.datasets.register("remote", items=lines, data_type="image")
    panel = ds.preview()
    assert "size unknown (not in the manifest)" in panel.header.value and "0 B" not in panel.header.value
    tiles = _tiles(panel)
    assert [re.search(r"<bdi>(.*?)</bdi>", t).group(1) for t in tiles] == [f"img_{i}.png" for i in range(3)]
    assert f"title='{html.escape(str(folder / 'img_0.png'))} (size unknown)'" in tiles[0]
    assert "<td>not recorded</td>" in ds._repr_html_()

    texts = ws.datasets.register("notes", items=["first <b>note</b>", "second"])
    panel = texts.preview()
    assert "2 items &middot; size unknown" in panel.header.value
    assert "first &lt;b&gt;note&lt;/b&gt;" in panel.body.children[0].value
