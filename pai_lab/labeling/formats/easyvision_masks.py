"""Segmentation masks of the EasyVision CSV: polygons drawn into a PNG and traced back out.

A mask is a PNG the size of its image whose channel 2 (the third, 0-based index 2) holds each
pixel's class id, 0 to num_class-1, 0 being the background. Polygons are drawn in the order
given (a later one covers an earlier one); a pixel belongs to a polygon when its centre lies
inside it, so a rectangle with whole-number corners covers exactly the pixels between them and
traces back to the same four corners.

Tracing follows the pixel edges around each region of one class (clockwise from its top-left
corner, the order the rectangle tool draws) and keeps only the corners; holes are not kept.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from pai_lab.errors import BadInput

BACKGROUND_NAMES = {"background", "背景"}


def class_offset(labels: list[str]) -> int:
    """Mask value of ``labels[0]``: 0 when the list starts with its background class, else 1."""
    return 0 if labels and labels[0].strip().lower() in BACKGROUND_NAMES else 1


def rasterize(width: int, height: int, polygons: list[tuple[list, int]]) -> np.ndarray:
    """A (height, width) uint8 array: each polygon's class value over the pixels whose centre it holds."""
    mask = np.zeros((height, width), dtype=np.uint8)
    for points, value in polygons:
        # only the pixels of the polygon's bounding box can have their centre inside it
        left = max(0, int(np.floor(min(p[0] for p in points))))
        top = max(0, int(np.floor(min(p[1] for p in points))))
        right = min(width, int(np.ceil(max(p[0] for p in points))))
        bottom = min(height, int(np.ceil(max(p[1] for p in points))))
        if left >= right or top >= bottom:
            continue
        cy, cx = np.mgrid[top:bottom, left:right].astype(np.float64) + 0.5
        inside = np.zeros(cy.shape, dtype=bool)
        n = len(points)
        for k in range(n):
            x1, y1 = points[k]
            x2, y2 = points[(k + 1) % n]
            if y1 == y2:
                continue
            crosses = (cy >= min(y1, y2)) & (cy < max(y1, y2))
            x_at = x1 + (cy - y1) * (x2 - x1) / (y2 - y1)
            inside ^= crosses & (cx < x_at)
        mask[top:bottom, left:right][inside] = value
    return mask


def encode(mask: np.ndarray) -> bytes:
    """The mask as an RGB PNG with the class ids in channel 2."""
    rgb = np.zeros((*mask.shape, 3), dtype=np.uint8)
    rgb[..., 2] = mask
    out = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(out, format="PNG")
    return out.getvalue()


def decode(data: bytes, where: str) -> np.ndarray:
    """Class ids of a mask PNG: channel 2 of a colour PNG, the values of a one-channel one."""
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (OSError, ValueError) as exc:
        raise BadInput(f"{where}: the mask is not a readable PNG ({exc})", "content") from None
    arr = np.asarray(image)
    if arr.ndim == 2:
        return arr.astype(np.uint8)
    if arr.shape[2] < 3:
        return arr[..., 0].astype(np.uint8)
    return arr[..., 2].astype(np.uint8)


def trace(mask: np.ndarray) -> list[tuple[list[list[int]], int]]:
    """(outline, class value) of every region of a non-zero class, top to bottom, left to right."""
    out: list[tuple[int, int, list[list[int]], int]] = []
    for value in sorted(int(v) for v in np.unique(mask) if v != 0):
        for loop in _loops(mask == value):
            top = min(range(len(loop)), key=lambda i: (loop[i][1], loop[i][0]))
            loop = loop[top:] + loop[:top]
            out.append((loop[0][1], loop[0][0], loop, value))
    out.sort(key=lambda t: (t[0], t[1], t[3]))
    return [(loop, value) for _, _, loop, value in out]


def _loops(region: np.ndarray) -> list[list[list[int]]]:
    """Clockwise outer outlines (corner points) of the True regions of a boolean array."""
    padded = np.pad(region, 1)
    inner = padded[1:-1, 1:-1]
    nxt: dict[tuple[int, int], list[tuple[int, int]]] = {}

    def add(cond: np.ndarray, start: tuple[int, int], end: tuple[int, int]) -> None:
        ys, xs = np.nonzero(cond)
        for y, x in zip(ys.tolist(), xs.tolist()):
            nxt.setdefault((x + start[0], y + start[1]), []).append((x + end[0], y + end[1]))

    add(inner & ~padded[:-2, 1:-1], (0, 0), (1, 0))  # top side, left to right
    add(inner & ~padded[1:-1, 2:], (1, 0), (1, 1))  # right side, downwards
    add(inner & ~padded[2:, 1:-1], (1, 1), (0, 1))  # bottom side, right to left
    add(inner & ~padded[1:-1, :-2], (0, 1), (0, 0))  # left side, upwards
    loops = []
    while nxt:
        start = min(nxt, key=lambda p: (p[1], p[0]))
        loop = [start]
        point = start
        while True:
            ends = nxt[point]
            end = ends.pop()
            if not ends:
                del nxt[point]
            if end == start:
                break
            loop.append(end)
            point = end
        corners = _corners(loop)
        if len(corners) >= 3 and _area(corners) > 0:  # clockwise on screen: an outline, not a hole
            loops.append([[x, y] for x, y in corners])
    return loops


def _corners(loop: list[tuple[int, int]]) -> list[tuple[int, int]]:
    n = len(loop)
    keep = []
    for i in range(n):
        (ax, ay), (bx, by), (cx, cy) = loop[i - 1], loop[i], loop[(i + 1) % n]
        if (bx - ax) * (cy - by) - (by - ay) * (cx - bx) != 0:
            keep.append(loop[i])
    return keep


def _area(points: list[tuple[int, int]]) -> float:
    return sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in zip(points, points[1:] + points[:1])) / 2
