"""Item images for the labelers: prepared once in the background, then every view is cut from the
prepared copy; a changed file is never shown stale; a damaged one says so; the folder keeps to its cap."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from pai_lab.errors import BadInput
from pai_lab.labeling import media
from pai_lab.labeling import schemas as sc
from pai_lab.labeling import service as sv
from pai_lab.platform import Platform

W = "default"


def noisy(size=(1024, 768), seed=0, mode="RGB") -> Image.Image:
    """A photo-like image: noise over a gradient (so it compresses like a photo, not like a flat fill)."""
    rng = np.random.default_rng(seed)
    w, h = size
    base = np.linspace(0, 200, w, dtype=np.float32)[None, :, None].repeat(h, 0).repeat(len(mode), 2)
    return Image.fromarray(np.clip(base + rng.integers(0, 50, base.shape), 0, 255).astype(np.uint8), mode)


def shots(platform, specs) -> list:
    """PNG files under the platform's root: one per (size, mode) in ``specs``."""
    folder = platform.root_dir / "shots"
    folder.mkdir(exist_ok=True)
    files = []
    for i, (size, mode) in enumerate(specs):
        files.append(folder / f"{i}.png")
        noisy(size, i, mode).save(files[-1], compress_level=1)
    return files


@pytest.fixture
def platform(media_platform):
    return media_platform


def make_task(platform, files: list, name="shots", package_size=None, prepare=False) -> str:
    lines = [{"data": {"source": str(f)}} for f in files]
    with platform.store.transaction() as s:
        task = sv.create_task(
            s,
            "owner",
            W,
            sc.TaskCreate(
                name=name,
                template="image-classification",
                labels=["a", "b"],
                lines=lines,
                package_size=package_size or len(lines),
            ),
            platform=platform if prepare else None,
        )
    return task.id


def view(platform, task_id, seq, w=0, h=0) -> tuple[Image.Image, media.Media]:
    shown = media.item_view(platform, "owner", W, task_id, str(seq), "source", w, h)
    return Image.open(io.BytesIO(shown.body)), shown


def test_prepared_images_serve_every_view_without_decoding_the_original_again(platform):
    files = shots(platform, [((1024, 768), "RGB"), ((600, 2000), "RGB"), ((1200, 900), "RGBA")])
    task_id = make_task(platform, files)
    pv = media.previews(platform)

    media.prepare_items(platform, "owner", W, task_id, package=1)
    assert pv.idle(60)
    assert pv.counts["prepared"] == 3 and pv.counts["from_original"] == 0

    # a view the size of a level is that level; other sizes are cut from the nearest larger one
    image, shown = view(platform, task_id, 0, 1000, 384)
    assert image.size == (512, 384) and shown.mime == "image/jpeg" and (shown.width, shown.height) == (1024, 768)
    image, _ = view(platform, task_id, 0, 300, 300)
    assert image.size == (300, 225)
    image, _ = view(platform, task_id, 0, 1536, 576)  # a box labeler's view leaves room to zoom
    assert image.size == (768, 576)
    image, shown = view(platform, task_id, 1, 900, 576)  # a tall image: its height decides
    assert image.size == (173, 576) and (shown.width, shown.height) == (600, 2000)
    image, shown = view(platform, task_id, 2, 640, 480)  # transparency is kept
    assert image.size == (640, 480) and image.mode == "RGBA" and shown.mime == "image/png"
    assert pv.counts["from_original"] == 0 and pv.counts["from_level"] == 5
    # what is shown is the picture itself, scaled: compare with scaling the original directly
    expected = np.asarray(Image.open(files[0]).convert("RGB").resize((300, 225), Image.Resampling.BOX), np.float32)
    got = np.asarray(view(platform, task_id, 0, 300, 300)[0].convert("RGB"), np.float32)
    assert np.abs(got - expected).mean() < 8

    # larger than the image or no size: the original file as it is
    _, shown = view(platform, task_id, 0, 2000, 2000)
    assert shown.body == files[0].read_bytes()
    _, shown = view(platform, task_id, 0)
    assert shown.body == files[0].read_bytes()

    # preparing again finds everything in place
    media.prepare_items(platform, "owner", W, task_id, package=1)
    assert pv.idle(60) and pv.counts["prepared"] == 3


def test_a_replaced_file_is_shown_as_it_is_now(platform):
    folder = platform.root_dir / "shots"
    folder.mkdir()
    path = folder / "0.png"
    Image.new("RGB", (1024, 768), (200, 30, 30)).save(path)
    task_id = make_task(platform, [path])
    image, _ = view(platform, task_id, 0, 512, 384)
    assert image.convert("RGB").getpixel((10, 10))[0] > 150  # red

    Image.new("RGB", (800, 800), (20, 20, 220)).save(path)  # the same name, another picture
    image, shown = view(platform, task_id, 0, 512, 384)
    assert image.size == (384, 384) and (shown.width, shown.height) == (800, 800)
    assert image.convert("RGB").getpixel((10, 10))[2] > 150  # blue


def test_views_before_preparation_keep_the_level_they_needed(platform):
    task_id = make_task(platform, shots(platform, [((1024, 768), "RGB")]))
    pv = media.previews(platform)
    assert view(platform, task_id, 0, 512, 384)[0].size == (512, 384)
    assert pv.counts["from_original"] == 1
    assert view(platform, task_id, 0, 400, 400)[0].size == (400, 300)
    assert pv.counts["from_original"] == 1 and pv.counts["from_level"] == 1


def test_a_palette_image_with_transparency_stays_a_transparent_png(platform):
    folder = platform.root_dir / "shots"
    folder.mkdir()
    path = folder / "logo.png"
    image = Image.new("P", (1200, 900), 0)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.paste(1, (300, 200, 900, 700))
    image.save(path, transparency=0)
    task_id = make_task(platform, [path])
    assert view(platform, task_id, 0)[1].body == path.read_bytes()  # the original first
    for size in ((512, 384), (300, 300)):  # then cut, and cut again from the kept copy
        shown_image, shown = view(platform, task_id, 0, *size)
        assert shown.mime == "image/png" and shown_image.mode == "RGBA"
        assert shown_image.getpixel((2, 2))[3] == 0 and shown_image.getpixel(
            (shown_image.width // 2, shown_image.height // 2)
        ) == (255, 0, 0, 255)


def test_damaged_and_missing_images_say_so_and_preparation_goes_on(platform):
    (good,) = shots(platform, [((1024, 768), "RGB")])
    folder = good.parent
    cut = folder / "cut.png"
    cut.write_bytes(good.read_bytes()[:5000])
    text = folder / "notes.png"
    text.write_text("not an image")
    task_id = make_task(platform, [cut, text, folder / "gone.png", good])
    pv = media.previews(platform)
    media.prepare_items(platform, "owner", W, task_id, package=1)
    assert pv.idle(60) and pv.counts["prepared"] == 1

    for seq in (0, 1):
        with pytest.raises(BadInput, match="skip the item as invalid"):
            view(platform, task_id, seq, 512, 384)
    with pytest.raises(Exception, match="does not exist"):
        view(platform, task_id, 2, 512, 384)
    assert view(platform, task_id, 3, 512, 384)[0].size == (512, 384)


def test_the_prepared_folder_keeps_to_its_cap(platform, tmp_path):
    files = shots(platform, [((1600, 1200), "RGB")] * 12)
    pv = media.Previews(platform, folder=tmp_path / "small", cap_bytes=600_000)
    for seq in range(12):
        shown = pv.view(media.locate(platform, str(files[seq]), {}), 512, 384)
        assert Image.open(io.BytesIO(shown.body)).size == (512, 384)
    kept = sum(p.stat().st_size for p in (tmp_path / "small").rglob("*") if p.is_file())
    assert 0 < kept <= 600_000
    # the newest stay; views of the oldest are made again
    assert pv.view(media.locate(platform, str(files[0]), {}), 512, 384).width == 1600


def test_new_tasks_prepare_their_first_images(tmp_path):
    p = Platform(tmp_path / "root", owner="owner", settings={"preview_prepare_items": 2}).start()
    try:
        task_id = make_task(p, shots(p, [((800, 600), "RGB")] * 4), package_size=2, prepare=True)  # as the server does
        pv = media.previews(p)
        assert pv.idle(60) and pv.counts["prepared"] == 2
        view(p, task_id, 1, 512, 384)
        view(p, task_id, 2, 512, 384)
        assert pv.counts["from_level"] == 1 and pv.counts["from_original"] == 1
    finally:
        media.previews(p).close()
        p.store.dispose()


@pytest.mark.s3
def test_objects_in_a_bucket_are_prepared_and_follow_their_etag(platform, s3_bucket):
    import boto3

    from pai_lab.datasets.schemas import DatasetCreate
    from pai_lab.datasets.service import register_dataset

    bucket, options = s3_bucket
    client = boto3.client(
        "s3",
        endpoint_url=options["client_kwargs"]["endpoint_url"],
        aws_access_key_id=options["key"],
        aws_secret_access_key=options["secret"],
        region_name="us-east-1",
    )

    def put(color):
        out = io.BytesIO()
        Image.new("RGB", (1024, 768), color).save(out, "PNG")
        client.put_object(Bucket=bucket, Key="shots/0.png", Body=out.getvalue())

    put((200, 30, 30))
    with platform.store.transaction() as s:
        register_dataset(
            s,
            "owner",
            W,
            DatasetCreate(name="shots", source=f"s3://{bucket}/shots/", scan=True, storage_options=options),
        )
        task = sv.create_task(
            s, "owner", W, sc.TaskCreate(name="s3shots", template="image-classification", labels=["a"], dataset="shots")
        )
    pv = media.previews(platform)
    media.prepare_items(platform, "owner", W, task.id, package=1)
    assert pv.idle(60) and pv.counts["prepared"] == 1
    image, _ = view(platform, task.id, 0, 512, 384)
    assert image.size == (512, 384) and image.getpixel((5, 5))[0] > 150
    assert pv.counts["from_level"] == 1

    put((20, 20, 220))
    image, _ = view(platform, task.id, 0, 512, 384)
    assert image.getpixel((5, 5))[2] > 150
