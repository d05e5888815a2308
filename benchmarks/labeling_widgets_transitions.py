"""Keypress to next image, measured in the browser: the pai_lab labeler against notebook peers.

Runs a JupyterLab with pai_lab and drives it with headless Chromium (the system's, never a
downloaded one). One notebook shows three image-classification labelers over the same PNGs:

* ``pai_lab``: ``task.label()``; one key per item; answers stored on the server.
* ``ipywidgets``: an ``Image`` and one ``Button`` per class; a click per item (the usual baseline).
* ``jupyter-bbox-widget`` (if installed): a class key, then Enter per item.

For each, a script in the page triggers the input and times until the next image is in the page,
decoded (``img.decode()``) and painted (the next animation frame): p50/p95 over the transitions,
and items per minute for the whole scripted run.

    python benchmarks/labeling_widgets_transitions.py                 # 200 images of 1024x768, 199 moves
    python benchmarks/labeling_widgets_transitions.py --items 8       # a quick look
    python benchmarks/labeling_widgets_transitions.py --pace 250      # a key every 250 ms after each image
    python benchmarks/labeling_widgets_transitions.py --boxes         # bounding boxes, 100 moves
    python benchmarks/labeling_widgets_transitions.py --cold          # images prepared only from the claim

With ``--boxes`` the images are labeled with boxes instead: for each item a box is dragged with the
mouse (not timed), then the time is taken from the keystroke after the last box (Enter) to the
next image decoded and painted, for pai_lab's object-detection labeler and jupyter-bbox-widget.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # first: an installed package may ship a top-level `tests` of its own

# In-page helpers of both measurements: the labeler's current image, and a promise of the next one.
PAGE_HELPERS = """
  const frame = () => new Promise((r) => requestAnimationFrame(() => r()));
  const current = () => {
    if (kind === "pai_lab") return root.querySelector("img[data-role=item-image]");
    return root.querySelector("img");
  };
  const ident = (img) => img ? (img.getAttribute("data-seq") || img.src) : null;
  const changed = (before) => new Promise((resolve, reject) => {
    const now = current();
    if (now && ident(now) !== before) { resolve(now); return; }
    const obs = new MutationObserver(() => {
      const img = current();
      if (img && ident(img) !== before) { obs.disconnect(); clearTimeout(timer); resolve(img); }
    });
    const timer = setTimeout(() => { obs.disconnect(); reject(new Error("no next image within 15 s")); }, 15000);
    obs.observe(root, { subtree: true, childList: true, attributes: true,
                     attributeFilter: ["src", "data-seq", "href"] });
  });
"""

# In-page timing: trigger, then wait for a new image, decode it, wait a frame.
MEASURE = (
    """
async ([root, kind, n, pace]) => {"""
    + PAGE_HELPERS
    + """
  const code = (k) => (k === "Enter" ? "Enter" : `Digit${k}`);
  const key = (target, k) =>
    target.dispatchEvent(new KeyboardEvent("keydown", { key: k, code: code(k), bubbles: true }));
  const times = [];
  const start = performance.now();
  for (let i = 0; i < n; i++) {
    const before = ident(current());
    const t0 = performance.now();
    if (kind === "pai_lab") key(root.closest(".pl-root") || root.querySelector(".pl-root"), String(i % 10));
    else if (kind === "ipywidgets") root.querySelectorAll("button")[i % 10].click();
    else {
      const target = root.querySelector("[tabindex]") || root;
      key(target, String((i % 9) + 1)); key(target, "Enter");
    }
    let img;
    try { img = await changed(before); } catch (e) { return { error: String(e.message), times, total: 0 }; }
    try { await img.decode(); } catch (e) { /* counted as shown */ }
    await frame();
    times.push(performance.now() - t0);
    if (pace) await new Promise((r) => setTimeout(r, pace)); // a labeler's look at the item: not timed
  }
  return { times, total: performance.now() - start };
}
"""
)


# One timed move for the box runs: the box is already drawn; Enter, then wait for the next image.
MEASURE_ONE = (
    """
async ([root, kind]) => {"""
    + PAGE_HELPERS
    + """
  const before = ident(current());
  const t0 = performance.now();
  const target = kind === "pai_lab" ? (root.closest(".pl-root") || root.querySelector(".pl-root"))
    : (root.querySelector("[tabindex]") || root);
  target.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", code: "Enter", bubbles: true }));
  const img = await changed(before);
  try { await img.decode(); } catch (e) { /* counted as shown */ }
  await frame();
  return performance.now() - t0;
}
"""
)


def make_images(folder: Path, count: int, size=(1024, 768)) -> list[Path]:
    """Photo-like PNGs (a smooth digit plus noise), so the bytes and decode cost are realistic."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(count):
        base = Image.fromarray((digits.images[i % len(digits.images)] * 15).astype(np.uint8)).resize(
            size, Image.Resampling.BILINEAR
        )
        pixels = np.asarray(base, dtype=np.int16)[..., None].repeat(3, axis=2)
        pixels = np.clip(pixels + rng.integers(-24, 24, pixels.shape), 0, 255).astype(np.uint8)
        path = folder / f"img_{i:04d}.png"
        Image.fromarray(pixels).save(path, compress_level=1)
        out.append(path)
    return out


def has_bbox_widget() -> bool:
    try:
        import jupyter_bbox_widget  # noqa: F401
    except ImportError:
        return False
    return True


def ipywidgets_cell(files: list[Path]) -> str:
    return (
        "import ipywidgets as W\nfrom pathlib import Path\n"
        f"files = {[str(f) for f in files]!r}\n"
        "img = W.Image(value=Path(files[0]).read_bytes(), format='png', layout=W.Layout(max_width='800px'))\n"
        "state = {'i': 0, 'answers': []}\n"
        "def pick(button):\n"
        "    state['answers'].append((state['i'], button.description))\n"
        "    state['i'] += 1\n"
        "    img.value = Path(files[state['i'] % len(files)]).read_bytes()\n"
        "buttons = [W.Button(description=str(c)) for c in range(10)]\n"
        "for b in buttons:\n    b.on_click(pick)\n"
        "W.VBox([img, W.HBox(buttons)])"
    )


def bbox_cell(files: list[Path], classes: list[str]) -> str:
    return (
        "from jupyter_bbox_widget import BBoxWidget\n"
        f"bfiles = {[str(f) for f in files]!r}\n"
        "bstate = {'i': 0, 'answers': []}\n"
        f"bw = BBoxWidget(image=bfiles[0], classes={classes!r})\n"
        "@bw.on_submit\n"
        "def submit():\n"
        "    bstate['answers'].append((bstate['i'], bw.label, list(bw.bboxes)))\n"
        "    bstate['i'] += 1\n"
        "    bw.bboxes = []\n"
        "    bw.image = bfiles[bstate['i'] % len(bfiles)]\n"
        "bw"
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


@contextlib.contextmanager
def labelers(
    lab, browser, transitions: int, image_folder: Path, template: str, labels: list[str], peers: dict[str, str]
):
    """One page with pai_lab's labeler over a new task, then each peer's cell, every first image
    shown; yields (page, {name: root}, transitions)."""
    from tests.fixtures.labeling_browser import create_task, open_notebook

    transitions = min(transitions, 199)  # a package holds at most 200 items: 199 moves between them
    files = make_images(image_folder, transitions + 1)
    name = f"bench_{uuid.uuid4().hex[:6]}"
    create_task(
        lab,
        {
            "name": name,
            "template": template,
            "labels": labels,
            "package_size": min(200, len(files)),
            "lines": [{"data": {"source": str(f)}} for f in files],
        },
    )
    cells = {kind: make(files) for kind, make in peers.items()}
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(60_000)
    page = context.new_page()
    try:
        nb = open_notebook(
            page, lab, [f"import pai_lab\nws = pai_lab.connect()\nws.labeling.get({name!r}).label()", *cells.values()]
        )
        roots = {"pai_lab": nb.run(0)}
        roots["pai_lab"].locator("img[data-role=item-image]").wait_for()
        for index, kind in enumerate(cells, 1):
            nb.run(index, widget=False)
            output = nb.cell(index).locator(".jp-OutputArea-output")
            output.locator("img").first.wait_for()
            roots[kind] = output
        time.sleep(1.0)  # let the first images and the pai_lab preloads settle, as a person would look first
        yield page, roots, transitions
    finally:
        context.close()


def run(lab, browser, transitions: int, image_folder: Path, pace_ms: int = 0) -> dict[str, dict]:
    """Measure each labeler in one page; returns {name: {p50, p95, items_per_minute, n}}.
    ``pace_ms``: a pause after each item is shown before the next key (0: back to back)."""
    digits = [str(d) for d in range(10)]
    peers = {"ipywidgets": ipywidgets_cell}
    if has_bbox_widget():
        peers["jupyter-bbox-widget"] = lambda files: bbox_cell(files, digits)
    with labelers(lab, browser, transitions, image_folder, "image-classification", digits, peers) as (
        page,
        roots,
        transitions,
    ):
        results = {}
        for kind, root in roots.items():
            root.scroll_into_view_if_needed()
            measured = page.evaluate(MEASURE, [root.element_handle(), kind, transitions, pace_ms])
            if measured.get("error"):
                print(
                    f"{kind}: stopped after {len(measured['times'])} transitions: {measured['error']}", file=sys.stderr
                )
                continue
            times = measured["times"]
            results[kind] = {
                "n": len(times),
                "p50": statistics.median(times),
                "p95": percentile(times, 95),
                "items_per_minute": 60_000 * len(times) / measured["total"],
            }
        return results


def run_boxes(lab, browser, transitions: int, image_folder: Path) -> dict[str, dict]:
    """Per item: drag a box (not timed), then time Enter -> next image decoded and painted."""
    classes = ["digit", "noise"]
    peers = {"jupyter-bbox-widget": lambda files: bbox_cell(files, classes)} if has_bbox_widget() else {}
    with labelers(lab, browser, transitions, image_folder, "object-detection", classes, peers) as (
        page,
        roots,
        transitions,
    ):
        results = {}
        for kind, root in roots.items():
            root.scroll_into_view_if_needed()
            times, start = [], time.perf_counter()
            for _ in range(transitions):
                img = root.locator("img[data-role=item-image]" if kind == "pai_lab" else "img").first
                box = img.bounding_box()
                page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.3)
                page.mouse.down()
                page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.7, steps=3)
                page.mouse.up()
                if kind != "pai_lab":
                    page.keyboard.press("1")  # bbox-widget: the class of the box just drawn
                try:
                    times.append(page.evaluate(MEASURE_ONE, [root.element_handle(), kind]))
                except Exception as exc:  # noqa: BLE001 - report how far it got
                    print(f"{kind}: stopped after {len(times)} transitions: {exc}", file=sys.stderr)
                    break
            if times:
                results[kind] = {
                    "n": len(times),
                    "p50": statistics.median(times),
                    "p95": percentile(times, 95),
                    "items_per_minute": 60 * len(times) / (time.perf_counter() - start),
                }
        return results


def report(results: dict[str, dict], boxes: bool = False) -> str:
    peers = [k for k in results if k != "pai_lab"]
    best_peer = min(peers, key=lambda k: results[k]["p95"]) if peers else None
    lines = [f"{'labeler':<22}{'p50 ms':>9}{'p95 ms':>9}{'items/min':>11}{'input/item':>16}"]
    keys = {"pai_lab": "1", "ipywidgets": "1 click", "jupyter-bbox-widget": "2"}
    if boxes:
        keys = {"pai_lab": "drag, Enter", "jupyter-bbox-widget": "drag, 1, Enter"}
    for kind, r in results.items():
        lines.append(f"{kind:<22}{r['p50']:>9.1f}{r['p95']:>9.1f}{r['items_per_minute']:>11.0f}{keys[kind]:>16}")
    if best_peer and "pai_lab" in results:
        ours = results["pai_lab"]
        lines.append(
            f"p95 ratio (faster peer {best_peer} / pai_lab): {results[best_peer]['p95'] / ours['p95']:.1f}x; "
            f"p50 ratio: {results[best_peer]['p50'] / ours['p50']:.1f}x; items/min ratio: "
            f"{ours['items_per_minute'] / results[best_peer]['items_per_minute']:.1f}x"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--items",
        type=int,
        default=199,
        help="transitions measured per labeler (default and most: 199, across one 200-item package)",
    )
    parser.add_argument("--boxes", action="store_true", help="bounding boxes: Enter after the box to the next image")
    parser.add_argument(
        "--pace",
        type=int,
        default=0,
        metavar="MS",
        help="classification: pause MS after each item is shown before the next key (default 0: "
        "back to back, the heaviest load; a person needs 500 ms or more per item)",
    )
    parser.add_argument(
        "--cold",
        action="store_true",
        help="no preparation when the task is created: only from the claim, as the page opens",
    )
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    from tests.fixtures.browser import CHROMIUM, CHROMIUM_ARGS, start_lab

    with tempfile.TemporaryDirectory(prefix="pai-bench-") as tmp:
        lab = start_lab(Path(tmp), *(["--PaiLabApp.preview_prepare_items=0"] if args.cold else []))
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
                try:
                    if args.boxes:
                        results = run_boxes(lab, browser, 100 if args.items == 199 else args.items, lab.root / "images")
                    else:
                        results = run(lab, browser, args.items, lab.root / "images", args.pace)
                finally:
                    browser.close()
        finally:
            lab.stop()
    print(report(results, boxes=args.boxes))
    return results


if __name__ == "__main__":
    main()
