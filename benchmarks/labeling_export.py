"""Export N annotated detection items (3 boxes each) to iTAG, COCO and YOLO, side by side with
Label Studio's converter (label-studio-sdk) on the same annotations as Label Studio JSON.

Prints items/s and peak Python memory (tracemalloc, measured in a second run so the timing is
not slowed by it) for each, and our speed as a ratio of the converter's.

    python benchmarks/labeling_export.py             # 100,000 items
    python benchmarks/labeling_export.py --items 500 # a quick look
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pai_lab.labeling import schemas as sc
from pai_lab.labeling import service as sv
from pai_lab.labeling import transfer
from pai_lab.labeling.formats.labelstudio import config as ls_config
from pai_lab.labeling.templates import builtin
from pai_lab.platform import Platform

LABELS = ["car", "person", "bike"]


def make_items(n: int):
    rnd = random.Random(7)
    for i in range(n):
        shapes = []
        for k in range(3):
            x, y = rnd.uniform(0, 500), rnd.uniform(0, 300)
            w, h = rnd.uniform(10, 120), rnd.uniform(10, 120)
            shapes.append(
                {
                    "id": f"{i:08d}-{k}",
                    "type": "image/polygon",
                    "value": [[x, y], [x + w, y], [x + w, y + h], [x, y + h]],
                    "labels": {"单选": LABELS[(i + k) % 3]},
                }
            )
        results = [
            {
                "questionId": "1",
                "data": shapes,
                "rotation": 0,
                "markTitle": "目标检测标签配置",
                "width": 640,
                "type": "image",
                "height": 480,
            }
        ]
        yield sv.NewItem({"source": f"images/{i:08d}.jpg"}, {"label": results})


def measure(fn):
    """(seconds, peak MiB): timed once plainly, then once under tracemalloc for the peak."""
    start = time.perf_counter()
    fn()
    seconds = time.perf_counter() - start
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return seconds, peak


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--no-converter", action="store_true", help="skip Label Studio's converter")
    args = ap.parse_args(argv)
    n = args.items
    work = Path(tempfile.mkdtemp(prefix="label-bench-"))
    try:
        platform = Platform(work / "root", owner="owner").start()
        store = platform.store
        t0 = time.perf_counter()
        with store.transaction() as s:
            task = sv.create_task(
                s,
                "owner",
                "default",
                sc.TaskCreate(
                    name="bench", template="object-detection", labels=LABELS, package_size=200 if n > 20_000 else 20
                ),
                items=make_items(n),
                source="import",
            )
        print(f"created a task of {n:,} detection items (3 boxes each) in {time.perf_counter() - t0:.1f}s")

        def export(fmt, to, options=None):
            return lambda: transfer.export_to(
                store, "owner", "default", task.id, sc.ExportRequest(format=fmt, to=str(to), options=options or {})
            )

        def yolo():
            shutil.rmtree(work / "yolo", ignore_errors=True)
            export("yolo", work / "yolo", {"copy_images": False, "val_ratio": 0})()

        ours = {
            "itag": measure(export("itag", work / "out.manifest")),
            "coco": measure(export("coco", work / "coco.json")),
            "yolo": measure(yolo),
        }
        results = {"items": n, "ours": {}, "converter": {}}
        for fmt, (sec, peak) in ours.items():
            results["ours"][fmt] = {"items_per_s": n / sec, "peak_mib": peak}

        if not args.no_converter:
            try:
                from label_studio_sdk.converter import Converter
            except ImportError:
                print("label-studio-sdk is not installed: converter comparison skipped")
            else:
                export("label-studio", work / "ls.json")()
                conf = ls_config(builtin("object-detection"), LABELS)

                def ls(fmt):
                    def run():
                        out = work / f"ls-{fmt}"
                        shutil.rmtree(out, ignore_errors=True)
                        conv = Converter(conf, str(work), download_resources=False)
                        if fmt == "coco":
                            conv.convert_to_coco(str(work / "ls.json"), str(out), is_dir=False)
                        else:
                            conv.convert_to_yolo(str(work / "ls.json"), str(out), is_dir=False)

                    return run

                import logging

                logging.disable(logging.WARNING)  # the converter logs every task it cannot find an image for
                for fmt in ("coco", "yolo"):
                    sec, peak = measure(ls(fmt))
                    results["converter"][fmt] = {"items_per_s": n / sec, "peak_mib": peak}

        print(
            f"\n{'format':<8}{'ours items/s':>14}{'ours peak MiB':>15}{'LS conv items/s':>17}{'LS peak MiB':>13}"
            f"{'speed ratio':>13}"
        )
        for fmt in ("itag", "coco", "yolo"):
            o = results["ours"][fmt]
            c = results["converter"].get(fmt)
            conv = (
                f"{c['items_per_s']:>17,.0f}{c['peak_mib']:>13.1f}{o['items_per_s'] / c['items_per_s']:>12.1f}x"
                if c
                else f"{'-':>17}{'-':>13}{'-':>13}"
            )
            print(f"{fmt:<8}{o['items_per_s']:>14,.0f}{o['peak_mib']:>15.1f}{conv}")
        platform.store.dispose()
        return results
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    json.dumps(main())
