"""CoNLL (2003 style) NER: one ``token<TAB>tag`` line per token, BIO tags, a blank line
between items. Tokens are runs of letters/digits or single other characters, so Chinese text
is tagged character by character. A span's first label is its tag; overlapping spans keep
the first one. Items without a final answer are left out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

from pai_lab.errors import BadInput
from pai_lab.labeling.formats import ExportContext, chunked, zip_results

NAME = "conll"
TOKEN = re.compile(r"[^\W\u4e00-\u9fff\u3040-\u30ff\uac00-\ud7af]+|\S", re.UNICODE)


def fits(ctx: ExportContext) -> None:
    if not ctx.questions("spans"):
        raise BadInput(
            f"CoNLL holds text spans; the {ctx.template} template has none. Use itag or label-studio", "format"
        )


def tokens(text: str) -> list[tuple[str, int, int]]:
    """(token, start, end exclusive)."""
    return [(m.group(), m.start(), m.end()) for m in TOKEN.finditer(text)]


def tag(text: str, spans: list[tuple[int, int, str]]) -> list[tuple[str, str]]:
    """BIO tags for ``spans`` given as (start, end inclusive, label)."""
    out = []
    taken: list[tuple[int, int, str]] = []
    for s in spans:
        if not any(s[0] <= t[1] and t[0] <= s[1] for t in taken):
            taken.append(s)
    for tok, start, end in tokens(text):
        label, begin = "O", False
        for s_start, s_end, s_label in taken:
            if start <= s_end and s_start < end:
                label = s_label.replace(" ", "_")
                begin = start <= s_start
                break
        out.append((tok, "O" if label == "O" else ("B-" if begin else "I-") + label))
    return out


def sentences(ctx: ExportContext) -> Iterator[str]:
    for r in ctx.rows():
        if r.final is None:
            continue
        data = json.loads(r.data)
        for q, el in zip_results(ctx.spec, json.loads(r.final)):
            if q.type != "spans":
                continue
            text = data.get(q.bind or "source")
            if not isinstance(text, str):
                continue
            spans = []
            for o in el["objects"]:
                v = o["result"].get(q.result_key)
                label = v[0] if isinstance(v, list) and v else v
                if label:
                    spans.append((o["start"], o["end"], label))
            lines = [f"{t}\t{g}" for t, g in tag(text, spans)]
            if lines:
                yield "\n".join(lines) + "\n\n"


def export(ctx: ExportContext) -> Iterator[str]:
    return chunked(sentences(ctx))
