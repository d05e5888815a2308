"""The labeling widgets in real JupyterLab and headless Chromium: a notebook runs ``task.label()``
and the test labels with keys and the mouse, then checks what the server stored."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest

from tests.fixtures.browser import ARTIFACTS, save_screenshot
from tests.fixtures.labeling_browser import create_task, digit_images, open_notebook, task_items, wait_kernel_idle

pytestmark = pytest.mark.e2e

DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
# One notebook for the module (one JupyterLab page load, one kernel); each test fills its task
# and runs its own cell, as a person working down a notebook would.
NAMES = {
    key: f"{key}_{uuid.uuid4().hex[:6]}"
    for key in (
        "digits",
        "boxes",
        "ner",
        "check",
        "texts",
        "ocr",
        "segments",
        "custom",
        "relation",
        "zoom",
        "accept",
        "asr",
        "video",
        "refused",
        "suggested",
        "suggested_boxes",
    )
}
# The busy cell keeps the kernel busy until the test writes this file beside the notebook: the test
# decides when the kernel is free again, not a clock.
RELEASE_KERNEL = f"release_{uuid.uuid4().hex[:6]}"
BUSY = (
    f"import pathlib, time\nwhile not pathlib.Path({RELEASE_KERNEL!r}).exists():\n"
    "    time.sleep(0.1)  # the kernel busy with other work"
)
CELLS = [
    "import pai_lab\nws = pai_lab.connect()",
    f"ws.labeling.get({NAMES['boxes']!r}).label()",
    f"ws.labeling.get({NAMES['ner']!r}).label()",
    f"task = ws.labeling.get({NAMES['check']!r})\ntask.check()",
    "task.label()",
    f"ws.labeling.get({NAMES['digits']!r}).label()",
    f"ws.labeling.get({NAMES['texts']!r}).label()",
    f"ws.labeling.get({NAMES['ocr']!r}).label()",
    f"ws.labeling.get({NAMES['segments']!r}).label()",
    f"ws.labeling.get({NAMES['custom']!r}).label()",
    f"ws.labeling.get({NAMES['relation']!r}).label()",
    f"ws.labeling.get({NAMES['zoom']!r}).label()",
    f"ws.labeling.get({NAMES['accept']!r}).accept()",
    f"ws.labeling.get({NAMES['asr']!r}).label()",
    f"ws.labeling.get({NAMES['video']!r}).label()",
    BUSY,
    f"ws.labeling.get({NAMES['refused']!r}).label()",
    f"ws.labeling.get({NAMES['suggested']!r}).label()",
    f"ws.labeling.get({NAMES['suggested_boxes']!r}).label()",
]
BUSY_CELL = CELLS.index(BUSY)


@pytest.fixture(scope="module")
def notebook(widget_lab, browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(30_000)
    page = context.new_page()
    nb = open_notebook(page, widget_lab, CELLS)
    nb.run(0, widget=False)
    yield nb
    context.close()


@pytest.fixture
def page(notebook, request):
    yield notebook.page
    outcome = getattr(request.node, "rep_call", None)
    if outcome is not None and outcome.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        notebook.page.screenshot(path=str(ARTIFACTS / f"{request.node.name}-failed.png"))


def shot(locator, name: str) -> None:
    """A screenshot in test-artifacts/, copied to docs/images/ when PAI_LAB_DOC_SHOTS is set."""
    import os

    path = save_screenshot(locator, name)
    if os.environ.get("PAI_LAB_DOC_SHOTS"):
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, DOCS_IMAGES / name)


def position(root) -> str:
    return root.locator("[data-role=position]").inner_text()


def wait_saved(page, root) -> None:
    root.locator("[data-role=save].saved").wait_for(timeout=30_000)


def test_draw_a_box_by_mouse_drag_and_skip_a_corrupt_image(widget_lab, notebook, page):
    lab = widget_lab
    folder = lab.root / f"boxes_{uuid.uuid4().hex[:6]}"
    [(image, _)] = digit_images(folder, 1, size=(640, 480))
    corrupt = folder / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    task = create_task(
        lab,
        {
            "name": NAMES["boxes"],
            "template": "object-detection",
            "labels": ["digit", "noise"],
            "lines": [{"data": {"source": str(image)}}, {"data": {"source": str(corrupt)}}],
        },
    )
    root = notebook.run(1)
    img = root.locator("img[data-role=item-image]")
    img.wait_for()
    box = img.bounding_box()
    # drag from 25%/20% to 75%/90% of the shown image
    x1, y1 = box["x"] + box["width"] * 0.25, box["y"] + box["height"] * 0.2
    x2, y2 = box["x"] + box["width"] * 0.75, box["y"] + box["height"] * 0.9
    page.mouse.move(x1, y1)
    page.mouse.down()
    page.mouse.move((x1 + x2) / 2, (y1 + y2) / 2, steps=4)
    page.mouse.move(x2, y2, steps=4)
    page.mouse.up()
    root.locator("[data-role=shape-row]").wait_for()
    page.keyboard.press("2")  # the selected box becomes "noise"
    shot(root, "labeling-object-detection.png")
    page.keyboard.press("Enter")

    # the next image is corrupt: the widget says so and offers to skip it
    problem = root.locator("[data-role=problem]")
    problem.wait_for()
    assert "not an image" in problem.inner_text() or "decode" in problem.inner_text()
    page.keyboard.press("x")
    reason = root.locator("input[data-role=skip-reason]")
    reason.wait_for()
    assert "image" in reason.input_value()
    page.keyboard.press("Enter")
    root.locator("[data-role=done]").wait_for()
    wait_saved(page, root)

    first, second = task_items(lab, task["id"])
    [answer] = first["label"]
    assert (answer["width"], answer["height"]) == (640, 480)
    [shape] = answer["data"]
    assert shape["labels"] == {"单选": "noise"}
    xs = [p[0] for p in shape["value"]]
    ys = [p[1] for p in shape["value"]]
    # exported in image pixels: where the mouse went, scaled from the shown size to 640x480
    assert min(xs) == pytest.approx(640 * 0.25, abs=2) and max(xs) == pytest.approx(640 * 0.75, abs=2)
    assert min(ys) == pytest.approx(480 * 0.2, abs=2) and max(ys) == pytest.approx(480 * 0.9, abs=2)
    assert second["skipped"] and "image" in second["skipped"]
    assert second["label"] is None


def test_select_an_ner_span_with_the_mouse(widget_lab, notebook, page):
    lab = widget_lab
    text = "Alibaba was founded in Hangzhou in 1999 by Jack Ma."
    task = create_task(
        lab,
        {
            "name": NAMES["ner"],
            "template": "ner",
            "labels": ["ORG", "LOC", "PER"],
            "lines": [{"data": {"source": text}}, {"data": {"source": "Beijing is far."}}],
        },
    )
    root = notebook.run(2)
    text_el = root.locator("[data-role=text]")
    text_el.wait_for()
    # drag across "Hangzhou" with the mouse
    start, end = text.index("Hangzhou"), text.index("Hangzhou") + len("Hangzhou")
    rects = text_el.evaluate(
        """(el, [a, b]) => {
        const node = el.firstChild.firstChild;  // one segment: the text has no spans yet
        const r = document.createRange();
        r.setStart(node, a); r.setEnd(node, a + 1); const first = r.getBoundingClientRect();
        r.setStart(node, b - 1); r.setEnd(node, b); const last = r.getBoundingClientRect();
        return [first.left + 1, first.top + first.height / 2, last.right - 1, last.top + last.height / 2];
    }""",
        [start, end],
    )
    page.mouse.move(rects[0], rects[1])
    page.mouse.down()
    page.mouse.move(rects[2], rects[3], steps=5)
    page.mouse.up()
    root.locator(".pl-seg.kbsel").first.wait_for()
    page.keyboard.press("2")  # LOC
    root.locator("[data-role=span-row]").wait_for()
    shot(root, "labeling-ner.png")
    page.keyboard.press("Enter")
    root.locator("[data-role=text]").filter(has_text="Beijing").wait_for()
    wait_saved(page, root)

    first = task_items(lab, task["id"])[0]
    [spans] = first["label"]
    assert spans["objects"] == [
        {"result": {"文本内容": "LOC"}, "color": None, "id": None, "text": "Hangzhou", "start": start, "end": end - 1}
    ]


def test_checker_rejects_and_the_package_returns_to_the_labeler(widget_lab, notebook, page):
    lab = widget_lab
    images = digit_images(lab.root / f"check_{uuid.uuid4().hex[:6]}", 3)
    task = create_task(
        lab,
        {
            "name": NAMES["check"],
            "template": "image-classification",
            "labels": [str(d) for d in range(10)],
            "flow": "label-check",
            "lines": [{"data": {"source": str(path)}} for path, _ in images],
        },
    )
    base = f"/workspaces/default/labeling/tasks/{task['id']}"
    # labeled (one wrongly) and submitted through the API, as another notebook would
    package = lab.api("POST", base + "/claim", {"stage": "label"}).json()
    for seq, (_, digit) in enumerate(images):
        answer = "7" if seq == 1 else str(digit)
        assert lab.api("POST", base + "/answers", {"item": seq, "answer": answer}).status_code in (200, 201)
    assert lab.api("POST", base + f"/packages/{package['number']}/submit").status_code == 200

    root = notebook.run(3)
    root.locator(".pl-badge.check").wait_for()
    root.locator("img[data-role=item-image]").wait_for()
    root.locator(".pl-head").click()
    # the checker sees the labeler's answer selected
    assert root.locator(".pl-choice.on").inner_text().startswith(str(images[0][1]))
    page.keyboard.press("Enter")  # item 0 is right
    root.locator("[data-role=position]").filter(has_text="2/3").wait_for()
    shot(root, "labeling-checker.png")
    page.keyboard.press("r")
    comment = root.locator("input[data-role=reject-comment]")
    comment.wait_for()
    comment.fill("item 2 shows a different digit")
    page.keyboard.press("Enter")
    root.locator("[data-role=done]").wait_for()

    packages = lab.api("GET", base + "/packages").json()
    assert packages[0]["state"] == "labeling" and packages[0]["comment"] == "item 2 shows a different digit"

    # the labeler opens the task and gets the package back, with the comment shown
    labeler = notebook.run(4)
    labeler.locator(".pl-notice").filter(has_text="item 2 shows a different digit").wait_for()
    assert labeler.locator(".pl-badge.label").count() == 1


def write_wav(path: Path, seconds: float = 2.0, rate: int = 16000) -> None:
    """Two tone bursts with silence around them."""
    import wave

    import numpy as np

    t = np.arange(int(seconds * rate)) / rate
    signal = np.sin(2 * np.pi * 440 * t) * ((t > 0.3) & (t < 0.8) | (t > 1.2) & (t < 1.7))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((signal * 20000).astype("<i2").tobytes())


def test_text_ocr_audio_segments_and_custom_templates(widget_lab, notebook, page):
    lab = widget_lab
    folder = lab.root / f"misc_{uuid.uuid4().hex[:6]}"
    [(image, _)] = digit_images(folder, 1, size=(400, 300))
    audio = folder / "speech.wav"
    write_wav(audio)
    texts = create_task(
        lab,
        {
            "name": NAMES["texts"],
            "template": "text-classification",
            "labels": [{"name": "positive", "hotkey": "p"}, {"name": "negative", "hotkey": "n"}],
            "lines": [{"data": {"source": "Great phone, long battery life."}}, {"data": {"source": "word " * 60_000}}],
        },
    )
    ocr = create_task(
        lab, {"name": NAMES["ocr"], "template": "ocr", "labels": [], "lines": [{"data": {"source": str(image)}}]}
    )
    segments = create_task(
        lab,
        {
            "name": NAMES["segments"],
            "template": "audio-segmentation",
            "labels": ["speech", "noise"],
            "lines": [{"data": {"source": str(audio)}}],
        },
    )
    template = {
        "name": f"photo_caption_{uuid.uuid4().hex[:4]}",
        "contents": [{"type": "image", "key": "picture_url"}, {"type": "text", "key": "text"}],
        "questions": [
            {"type": "single", "title": "quality", "labels": ["good", "bad"]},
            {"type": "spans", "title": "NER", "bind": "text", "label_title": "NER", "labels": ["ORG", "LOC"]},
        ],
    }
    assert lab.api("POST", "/workspaces/default/labeling/templates", {"spec": template}).status_code == 201
    custom = create_task(
        lab,
        {
            "name": NAMES["custom"],
            "template": template["name"],
            "lines": [{"data": {"picture_url": str(image), "text": "Alibaba in Hangzhou"}}],
        },
    )

    # text classification: the item's own hotkey; a huge text is shown in part, with the problem said
    root = notebook.run(6)
    root.locator("[data-role=text]").filter(has_text="battery").wait_for()
    root.locator(".pl-head").click()
    page.keyboard.press("p")
    root.locator("[data-role=problem]").filter(has_text="characters").wait_for()
    # X, then Enter at once, as a fast typist does: Enter lands before the reason field has the
    # focus, and still confirms the reason the problem filled in
    root.evaluate("""(el) => {
        const press = (key) => el.dispatchEvent(new KeyboardEvent("keydown", { key, bubbles: true }));
        press("x"); press("Enter");
    }""")
    root.locator("[data-role=done]").wait_for()
    wait_saved(page, root)
    first, huge = task_items(lab, texts["id"])
    assert first["label"][0]["data"] == "positive" and "characters" in huge["skipped"]

    # OCR: a box, then its transcription typed in the box's field
    root = notebook.run(7)
    img = root.locator("img[data-role=item-image]")
    img.wait_for()
    box = img.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.1, box["y"] + box["height"] * 0.1)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.4, steps=3)
    page.mouse.up()
    field = root.locator("[data-role=shape-row] input")
    field.wait_for()
    field.fill("seven")
    field.press("Enter")
    shot(root, "labeling-ocr.png")
    root.locator(".pl-head").click()
    page.keyboard.press("Enter")
    root.locator("[data-role=done]").wait_for()
    wait_saved(page, root)
    [answer] = task_items(lab, ocr["id"])[0]["label"]
    assert answer["data"][0]["labels"] == {"OCR识别结果": "seven"}
    assert answer["data"][0]["value"][0] == pytest.approx([40, 30], abs=2)

    # audio segmentation: drag on the waveform
    root = notebook.run(8)
    wave = root.locator("[data-role=waveform]")
    wave.wait_for()
    area = wave.bounding_box()
    page.mouse.move(area["x"] + area["width"] * 0.15, area["y"] + area["height"] / 2)
    page.mouse.down()
    page.mouse.move(area["x"] + area["width"] * 0.4, area["y"] + area["height"] / 2, steps=3)
    page.mouse.up()
    root.locator("[data-role=segment-row]").wait_for()
    root.locator(".pl-head").click()
    page.keyboard.press("2")
    shot(root, "labeling-audio-segmentation.png")
    page.keyboard.press("Enter")
    root.locator("[data-role=done]").wait_for()
    wait_saved(page, root)
    [answer] = task_items(lab, segments["id"])[0]["label"]
    [segment] = answer["objects"]
    assert segment["result"]["单选"] == "noise" and segment["start"] == pytest.approx(0.3, abs=0.05)
    assert segment["end"] == pytest.approx(0.8, abs=0.05) and answer["duration"] == pytest.approx(2.0, abs=0.01)

    # custom template: its questions in order; Tab moves to the spans question
    root = notebook.run(9)
    root.locator("img[data-role=item-image]").wait_for()
    root.locator(".pl-head").click()
    page.keyboard.press("1")  # quality: good, then the next question is active
    text = "Alibaba in Hangzhou"  # keyboard only: caret to the end, Shift+Left over the last word
    for _ in range(len(text)):
        page.keyboard.press("ArrowRight")
    for _ in range(len("Hangzhou")):
        page.keyboard.press("Shift+ArrowLeft")
    page.keyboard.press("2")  # LOC
    shot(root, "labeling-custom.png")
    page.keyboard.press("Enter")
    root.locator("[data-role=done]").wait_for()
    wait_saved(page, root)
    [quality, spans] = task_items(lab, custom["id"])[0]["label"]
    assert quality["data"] == "good" and quality["markTitle"] == "quality"
    assert spans["objects"][0]["text"] == "Hangzhou" and spans["objects"][0]["result"] == {"NER": "LOC"}

    # entity relation: two entities by keyboard, then click one, L, click the other
    sentence = "Jack Ma founded Alibaba"
    relation = create_task(
        lab,
        {
            "name": NAMES["relation"],
            "template": "relation",
            "labels": ["PER", "ORG"],
            "relation_labels": ["founder_of"],
            "lines": [{"data": {"source": sentence}}],
        },
    )
    root = notebook.run(10)
    root.locator("[data-role=text]").wait_for()
    root.locator(".pl-head").click()
    for _ in range(len("Jack Ma")):
        page.keyboard.press("Shift+ArrowRight")
    page.keyboard.press("1")  # PER; the caret moves past the entity
    for _ in range(len(" founded ")):
        page.keyboard.press("ArrowRight")
    for _ in range(len("Alibaba")):
        page.keyboard.press("Shift+ArrowRight")
    page.keyboard.press("2")  # ORG
    root.locator(".pl-seg.ent", has_text="Jack").click()
    page.keyboard.press("l")
    root.locator(".pl-seg.ent", has_text="Alibaba").click()
    root.locator("[data-role=relation-row]").wait_for()
    page.keyboard.press("Enter")
    root.locator("[data-role=done]").wait_for()
    wait_saved(page, root)
    [entities, links] = task_items(lab, relation["id"])[0]["label"]
    assert [(o["text"], o["start"], o["end"]) for o in entities["objects"]] == [("Jack Ma", 0, 6), ("Alibaba", 16, 22)]
    [link] = links
    assert link["result"] == {"单选": "founder_of"}
    assert (link["from"]["text"], link["to"]["text"]) == ("Jack Ma", "Alibaba")


def test_classify_twenty_digits_by_key_then_reload_and_resume(widget_lab, notebook, page):
    lab = widget_lab
    images = digit_images(lab.root / f"digits_{uuid.uuid4().hex[:6]}", 20)
    task = create_task(
        lab,
        {
            "name": NAMES["digits"],
            "template": "image-classification",
            "labels": [str(d) for d in range(10)],
            "package_size": 20,
            "lines": [{"data": {"source": str(path)}} for path, _ in images],
        },
    )
    nb = notebook
    root = nb.run(5)
    root.locator("img[data-role=item-image]").wait_for()
    assert position(root) == "1/20"
    root.locator(".pl-head").click()  # focus the labeler, as a person clicking on it would

    # one keystroke per image: the digit it shows
    for i, (_, digit) in enumerate(images[:10]):
        page.keyboard.press(str(digit))
        page.wait_for_function(
            "([el, want]) => el.textContent === want",
            arg=[root.locator("[data-role=position]").element_handle(), f"{i + 2}/20"],
        )
    wait_saved(page, root)
    shot(root, "labeling-image-classification.png")

    stored = {item["seq"]: item for item in task_items(lab, task["id"])}
    for seq, (_, digit) in enumerate(images[:10]):
        assert stored[seq]["label"][0]["data"] == str(digit)
        assert stored[seq]["label"][0]["type"] == "survey/value"
    assert all(stored[seq]["label"] is None for seq in range(10, 20))

    # reload the page and open the task again: it resumes at the first unlabeled item
    page.reload()
    wait_kernel_idle(page)
    root = nb.run(5)
    root.locator("img[data-role=item-image]").wait_for()
    assert position(root) == "11/20"
    assert root.locator("img[data-role=item-image]").get_attribute("data-seq") == "10"

    # the page stores answers on the server itself: labeling goes on while the kernel runs a long cell
    busy = nb.cell(BUSY_CELL)
    busy.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")
    try:
        page.wait_for_function(
            "() => (document.querySelector('#jp-main-statusbar') || {}).textContent?.includes('| Busy')"
        )
        root.locator(".pl-head").click()
        for i, (_, digit) in enumerate(images[10:], start=10):
            page.keyboard.press(str(digit))
            if i + 2 <= 20:
                page.wait_for_function(
                    "([el, want]) => el.textContent === want",
                    arg=[root.locator("[data-role=position]").element_handle(), f"{i + 2}/20"],
                )
        root.locator("[data-role=done]").wait_for()
        wait_saved(page, root)
        stored = task_items(lab, task["id"])
        assert "| Busy" in page.locator("#jp-main-statusbar").inner_text()  # all stored, the kernel still busy
        assert [item["label"][0]["data"] for item in stored] == [str(d) for _, d in images]
    finally:
        (lab.root / RELEASE_KERNEL).touch()  # the notebook's folder is the lab's root: the busy cell ends
    wait_kernel_idle(page)
    # every answer was stored once: retries carry the same client id
    history = lab.api("GET", f"/workspaces/default/labeling/tasks/{task['id']}/items/0/history").json()
    assert len(history) == 1

    # Enter on the finished package submits it
    page.keyboard.press("Enter")
    root.locator(".pl-notice").filter(has_text="submitted").wait_for()
    packages = lab.api("GET", f"/workspaces/default/labeling/tasks/{task['id']}/packages").json()
    assert packages[0]["state"] == "done"


def test_transition_benchmark_smoke(widget_lab, browser, tmp_path):
    """The benchmark's tiny run: it still drives every labeler and times each transition."""
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "labeling_widgets_transitions.py"
    spec = importlib.util.spec_from_file_location("labeling_widgets_transitions", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    results = bench.run(widget_lab, browser, 2, widget_lab.root / f"bench_{uuid.uuid4().hex[:6]}", pace_ms=50)
    assert {"pai_lab", "ipywidgets"} <= set(results)
    for r in results.values():
        assert r["n"] == 2 and 0 < r["p50"] <= r["p95"] and r["items_per_minute"] > 0
    assert "p95 ratio" in bench.report(results)

    boxes = bench.run_boxes(widget_lab, browser, 2, widget_lab.root / f"boxbench_{uuid.uuid4().hex[:6]}")
    assert "pai_lab" in boxes
    for r in boxes.values():
        assert r["n"] == 2 and 0 < r["p50"] <= r["p95"]
    assert "drag, Enter" in bench.report(boxes, boxes=True)


def _cell(key: str) -> int:
    return next(i for i, cell in enumerate(CELLS) if NAMES[key] in cell)


def _at(box, fx: float, fy: float) -> tuple[float, float]:
    return box["x"] + box["width"] * fx, box["y"] + box["height"] * fy


def test_polygon_undo_zoom_and_pan_keep_shapes_in_image_pixels(widget_lab, notebook, page):
    lab = widget_lab
    folder = lab.root / f"zoom_{uuid.uuid4().hex[:6]}"
    images = digit_images(folder, 2, size=(640, 480))
    task = create_task(
        lab,
        {
            "name": NAMES["zoom"],
            "template": "object-detection",
            "labels": ["digit", "noise"],
            "lines": [{"data": {"source": str(path)}} for path, _ in images],
        },
    )
    root = notebook.run(_cell("zoom"))
    img = root.locator("img[data-role=item-image]")
    img.wait_for()
    root.locator(".pl-head").click()
    rows = root.locator("[data-role=shape-row]")

    # a polygon, point by point (G, clicks, Enter), then undone with Z, then drawn again
    def polygon():
        page.keyboard.press("g")
        root.locator("button.pl-btn.on").filter(has_text="Polygon").wait_for()
        box = img.bounding_box()
        for fx, fy in ((0.1, 0.1), (0.4, 0.1), (0.4, 0.3), (0.1, 0.3)):
            page.mouse.click(*_at(box, fx, fy))
        page.keyboard.press("Enter")
        rows.first.wait_for()

    polygon()
    assert rows.count() == 1
    page.keyboard.press("z")
    rows.first.wait_for(state="detached")
    polygon()
    page.keyboard.press("1")

    # zoom in twice (+), draw a rectangle on the zoomed image, pan with Shift+drag, fit with F
    page.keyboard.press("r")
    page.keyboard.press("+")
    page.keyboard.press("+")
    badge = root.locator(".pl-zoom")
    badge.wait_for()
    assert badge.inner_text() == "156%"
    box = img.bounding_box()
    assert box["width"] == pytest.approx(1.5625 * img.evaluate("el => el.offsetWidth"), rel=0.02)
    start, end = _at(box, 0.45, 0.45), _at(box, 0.55, 0.55)
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*end, steps=4)
    page.mouse.up()
    rows.nth(1).wait_for()
    page.keyboard.press("2")
    before = img.bounding_box()
    page.keyboard.down("Shift")
    page.mouse.move(before["x"] + before["width"] * 0.8, before["y"] + before["height"] * 0.8)
    page.mouse.down()
    page.mouse.move(before["x"] + before["width"] * 0.8 - 60, before["y"] + before["height"] * 0.8 - 40, steps=4)
    page.mouse.up()
    page.keyboard.up("Shift")
    after = img.bounding_box()
    moved = (after["x"] - before["x"], after["y"] - before["y"])
    assert moved == (pytest.approx(-60, abs=3), pytest.approx(-40, abs=3))
    assert rows.count() == 2  # panning drew nothing
    page.keyboard.press("f")
    badge.wait_for(state="detached")
    shot(root, "labeling-polygon-zoom.png")
    page.keyboard.press("Enter")
    root.locator("[data-role=position]").filter(has_text="2/2").wait_for()
    wait_saved(page, root)

    [answer] = task_items(lab, task["id"])[0]["label"]
    polygon_shape, rect_shape = answer["data"]
    assert polygon_shape["labels"] == {"单选": "digit"} and rect_shape["labels"] == {"单选": "noise"}
    expected = [[64, 48], [256, 48], [256, 144], [64, 144]]
    for got, want in zip(polygon_shape["value"], expected, strict=True):
        assert got == pytest.approx(want, abs=3)
    xs = [p[0] for p in rect_shape["value"]]
    ys = [p[1] for p in rect_shape["value"]]
    # drawn at 156%: still stored in the image's own pixels
    assert (min(xs), max(xs)) == (pytest.approx(288, abs=3), pytest.approx(352, abs=3))
    assert (min(ys), max(ys)) == (pytest.approx(216, abs=3), pytest.approx(264, abs=3))


def test_the_acceptor_passes_a_package_and_the_task_completes(widget_lab, notebook, page):
    lab = widget_lab
    images = digit_images(lab.root / f"accept_{uuid.uuid4().hex[:6]}", 2)
    task = create_task(
        lab,
        {
            "name": NAMES["accept"],
            "template": "image-classification",
            "labels": [str(d) for d in range(10)],
            "flow": "label-accept",
            "lines": [{"data": {"source": str(path)}} for path, _ in images],
        },
    )
    base = f"/workspaces/default/labeling/tasks/{task['id']}"
    package = lab.api("POST", base + "/claim", {"stage": "label"}).json()
    for seq, (_, digit) in enumerate(images):
        assert lab.api("POST", base + "/answers", {"item": seq, "answer": str(digit)}).status_code in (200, 201)
    assert lab.api("POST", base + f"/packages/{package['number']}/submit").status_code == 200

    root = notebook.run(_cell("accept"))
    root.locator(".pl-badge.accept").wait_for()
    root.locator("img[data-role=item-image]").wait_for()
    root.locator(".pl-head").click()
    assert root.locator(".pl-choice.on").inner_text().startswith(str(images[0][1]))
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")
    root.locator("[data-role=done]").wait_for()
    shot(root, "labeling-acceptor.png")
    page.keyboard.press("p")
    root.locator("[data-role=done]").filter(has_text="No package is waiting to be accepted").wait_for()

    assert lab.api("GET", base + "/packages").json()[0]["state"] == "done"
    info = lab.api("GET", base).json()
    assert info["state"] == "Completed" and info["accepted"] == 2
    assert [item["verify"][0]["data"] for item in task_items(lab, task["id"])] == [str(d) for _, d in images]


def media_duration(page, player) -> float:
    """Seconds of an audio or video element, once the browser has read the file's header."""
    player.wait_for()
    return page.wait_for_function(
        "el => el.readyState >= 1 && el.duration", arg=player.element_handle(), timeout=30_000
    ).json_value()


def test_asr_plays_the_audio_and_stores_the_typed_transcript(widget_lab, notebook, page):
    lab = widget_lab
    audio = lab.root / f"asr_{uuid.uuid4().hex[:6]}.wav"
    write_wav(audio)
    task = create_task(
        lab,
        {
            "name": NAMES["asr"],
            "template": "asr",
            "labels": ["clean", "noisy"],
            "lines": [{"data": {"source": str(audio)}}],
        },
    )
    root = notebook.run(_cell("asr"))
    # the page can play it: the browser read its length from the media route
    assert media_duration(page, root.locator("audio")) == pytest.approx(2.0, abs=0.05)
    root.locator(".pl-head").click()
    page.wait_for_function("el => el.contains(document.activeElement)", arg=root.element_handle())
    page.keyboard.press("t")  # T puts the cursor in the transcript
    transcript = root.locator("textarea[data-role=transcript]")
    page.wait_for_function("el => el === document.activeElement", arg=transcript.element_handle(), timeout=10_000)
    page.keyboard.type("two short tones")
    page.keyboard.press("Escape")
    page.keyboard.press("Tab")  # on to the labels question
    page.keyboard.press("1")
    root.locator(".pl-choice.on").filter(has_text="clean").wait_for()
    shot(root, "labeling-asr.png")
    page.keyboard.press("Enter")
    root.locator("[data-role=done]").wait_for()
    wait_saved(page, root)

    results = task_items(lab, task["id"])[0]["label"]
    values = [r["data"] for r in results]
    assert "two short tones" in values and ["clean"] in values


def write_webm(path: Path, seconds: float = 2.0, fps: int = 10) -> None:
    """A small VP8 WebM (what Chromium plays without proprietary codecs): a bar moving across."""
    import cv2
    import numpy as np

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"VP80"), fps, (160, 120))
    assert writer.isOpened(), "OpenCV cannot write VP8 WebM here"
    for i in range(int(seconds * fps)):
        frame = np.zeros((120, 160, 3), np.uint8)
        frame[:, (i * 8) % 160 : (i * 8) % 160 + 16] = (0, 200, 255)
        writer.write(frame)
    writer.release()


def test_video_classification_plays_the_clip_and_one_key_answers(widget_lab, notebook, page):
    lab = widget_lab
    clip = lab.root / f"clip_{uuid.uuid4().hex[:6]}.webm"
    write_webm(clip)
    task = create_task(
        lab,
        {
            "name": NAMES["video"],
            "template": "video-classification",
            "labels": ["moving", "still"],
            "lines": [{"data": {"source": str(clip)}}],
        },
    )
    root = notebook.run(_cell("video"))
    assert media_duration(page, root.locator("video")) == pytest.approx(2.0, abs=0.2)
    root.locator(".pl-head").click()
    page.keyboard.press("1")
    root.locator("[data-role=done]").wait_for()
    wait_saved(page, root)
    [answer] = task_items(lab, task["id"])[0]["label"]
    assert answer["data"] == "moving"


def test_answers_go_through_the_kernel_when_jupyter_refuses_the_page(widget_lab, notebook, page):
    """Jupyter itself refuses the page's direct posts (as its cross-site check does when the page
    has no usable _xsrf cookie): the labeler sends the answers through the kernel instead."""
    lab = widget_lab
    images = digit_images(lab.root / f"refused_{uuid.uuid4().hex[:6]}", 3)
    task = create_task(
        lab,
        {
            "name": NAMES["refused"],
            "template": "image-classification",
            "labels": [str(d) for d in range(10)],
            "lines": [{"data": {"source": str(path)}} for path, _ in images],
        },
    )
    refused = []

    def jupyter_refuses(route):
        refused.append(route.request.url)
        route.fulfill(
            status=403,
            content_type="application/json",
            body='{"message": "\'_xsrf\' argument missing from POST", "reason": null}',
        )

    page.route("**/labeling/tasks/*/answers", jupyter_refuses)
    try:
        root = notebook.run(CELLS.index(f"ws.labeling.get({NAMES['refused']!r}).label()"))
        root.locator("img[data-role=item-image]").wait_for()
        root.locator(".pl-head").click()
        for _, digit in images:
            page.keyboard.press(str(digit))
        root.locator("[data-role=done]").wait_for()
        wait_saved(page, root)
    finally:
        page.unroute("**/labeling/tasks/*/answers")
    assert refused  # the page tried the server first; after a refusal it goes through the kernel
    stored = task_items(lab, task["id"])
    assert [item["label"][0]["data"] for item in stored] == [str(d) for _, d in images]
    assert "task 3/3" in root.locator("[data-role=task]").inner_text()


def _attach(lab, task_id: str, items: list[dict]) -> None:
    resp = lab.api(
        "POST", f"/workspaces/default/labeling/tasks/{task_id}/prelabels", {"source": "model:test", "items": items}
    )
    assert resp.status_code == 200, resp.text


def test_a_suggestion_shows_pre_selected_and_one_key_accepts_it(widget_lab, notebook, page):
    lab = widget_lab
    images = digit_images(lab.root / f"suggested_{uuid.uuid4().hex[:6]}", 4)
    task = create_task(
        lab,
        {
            "name": NAMES["suggested"],
            "template": "image-classification",
            "labels": [str(d) for d in range(10)],
            "lines": [{"data": {"source": str(path)}} for path, _ in images],
        },
    )
    # what a model suggests, right or wrong: the labeler accepts each as it is
    suggested = [str((digit + seq % 2) % 10) for seq, (_, digit) in enumerate(images)]
    _attach(
        lab,
        task["id"],
        [{"item": seq, "answer": label, "score": 0.6 + 0.1 * seq} for seq, label in enumerate(suggested)],
    )
    root = notebook.run(CELLS.index(f"ws.labeling.get({NAMES['suggested']!r}).label()"))
    root.locator("img[data-role=item-image]").wait_for()
    root.locator(".pl-head").click()
    for seq, label in enumerate(suggested):
        # pre-selected: the suggested choice is shown as the chosen one
        chosen = root.locator(".pl-choice.on")
        page.wait_for_function("([el, want]) => el && el.dataset.label === want", arg=[chosen.element_handle(), label])
        assert chosen.count() == 1
        page.keyboard.press("a")
        want = f"{seq + 2}/4" if seq < 3 else None
        if want:
            page.wait_for_function(
                "([el, want]) => el.textContent === want",
                arg=[root.locator("[data-role=position]").element_handle(), want],
            )
    root.locator("[data-role=done]").wait_for()
    wait_saved(page, root)
    stored = task_items(lab, task["id"])
    assert [item["label"] for item in stored] == [item["prelabel"] for item in stored]
    assert [item["label"][0]["data"] for item in stored] == suggested
    assert [item["origins"] for item in stored] == [{"label": "prediction"}] * 4


def test_suggested_boxes_are_drawn_and_one_key_accepts_them(widget_lab, notebook, page):
    lab = widget_lab
    images = digit_images(lab.root / f"sboxes_{uuid.uuid4().hex[:6]}", 2, size=(640, 480))
    task = create_task(
        lab,
        {
            "name": NAMES["suggested_boxes"],
            "template": "object-detection",
            "labels": ["digit", "noise"],
            "lines": [{"data": {"source": str(path)}} for path, _ in images],
        },
    )
    boxes = [[100.25, 60.5, 420.75, 400], [32, 48, 600, 470.5]]
    _attach(
        lab,
        task["id"],
        [
            {
                "item": seq,
                "score": 0.8,
                "answer": {"width": 640, "height": 480, "shapes": [{"box": box, "label": ["digit", "noise"][seq]}]},
            }
            for seq, box in enumerate(boxes)
        ],
    )
    root = notebook.run(CELLS.index(f"ws.labeling.get({NAMES['suggested_boxes']!r}).label()"))
    root.locator("img[data-role=item-image]").wait_for()
    root.locator(".pl-head").click()
    for seq in range(2):
        # the suggested box is drawn as the item's own shape, listed and ready to keep
        root.locator("polygon.pl-shape:not(.suggestion)").first.wait_for()
        assert root.locator("[data-role=shape-row]").count() == 1
        page.keyboard.press("a")
        if seq == 0:
            page.wait_for_function(
                "([el]) => el.textContent === '2/2'", arg=[root.locator("[data-role=position]").element_handle()]
            )
    root.locator("[data-role=done]").wait_for()
    wait_saved(page, root)
    stored = task_items(lab, task["id"])
    for item, box in zip(stored, boxes):
        [shape] = item["label"][0]["data"]
        x1, y1, x2, y2 = box
        assert shape["value"] == [[x1, y1], [x2, y1], [x2, y2], [x1, y2]]
        assert shape["labels"] == item["prelabel"][0]["data"][0]["labels"]
    assert [item["origins"] for item in stored] == [{"label": "prediction"}] * 2
