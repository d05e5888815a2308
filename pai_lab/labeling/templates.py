"""Labeling templates: the ten built-in iTAG templates and custom templates defined as data.

A template is a list of *content components* (what the labeler sees: text, image, video or
audio bound to a key of the manifest line's ``data``) and *question components* (what the
labeler answers). Each question produces one element of the iTAG ``results`` list, in order:

==============  =============================================  ======================
question type   iTAG result element                            used by
==============  =============================================  ======================
single          ``survey/value`` (a label string)              classification
multi           ``survey/multivalue`` (a list of labels)       classification, ASR
text            ``survey/value`` (free text)                   ASR, custom
boxes           ``image`` with ``image/polygon`` shapes        detection, OCR
spans           ``{"objects": [...], "empty": bool}``           NER, relation
relations       a bare list of ``{"result", "from", "to"}``     relation
segments        ``{"duration", "objects", "empty"}``           audio segmentation
==============  =============================================  ======================

The titles (``markTitle`` and the keys inside shape labels and span results) follow the
built-in templates of iTAG: ``单选``/``多选`` by selection mode, ``文本内容`` for NER,
``OCR识别结果`` and ``音频识别结果`` for transcripts.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pai_lab.errors import BadInput

CONTENT_TYPES = ("text", "image", "video", "audio")
TOOLS: tuple[Literal["rect", "polygon"], ...] = ("rect", "polygon")
QUESTION_TYPES = ("single", "multi", "text", "boxes", "spans", "relations", "segments")
SINGLE, MULTI = "单选", "多选"
NER_TITLE = "文本内容"
OCR_TEXT = "OCR识别结果"
AUDIO_TEXT = "音频识别结果"


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ContentComponent(_Spec):
    type: Literal["text", "image", "video", "audio"]
    key: str = Field("source", description="the key of the manifest line's `data` shown here")
    id: str | None = Field(None, description="its position among the components, as iTAG numbers them")


class QuestionComponent(_Spec):
    type: Literal["single", "multi", "text", "boxes", "spans", "relations", "segments"]
    title: str = Field(min_length=1, max_length=100, description="markTitle, or the key in span results")
    id: str | None = Field(None, description="questionId written in survey and image results")
    bind: str | None = Field(None, description="content key this question marks (boxes, spans, segments)")
    labels: list[str] | None = Field(None, description="choices; None takes the task's label set")
    label_title: str | None = Field(None, description="key of the label inside a shape/span/segment")
    multi: bool = Field(False, description="a shape/span/segment carries several labels")
    text_title: str | None = Field(None, description="key of a per-shape/segment transcript (OCR, ASR)")
    tools: list[Literal["rect", "polygon"]] = Field(default_factory=lambda: list(TOOLS))
    required: bool = True

    @property
    def result_key(self) -> str:
        return self.label_title or (MULTI if self.multi else SINGLE)


class TemplateSpec(_Spec):
    """A template as data (JSON or YAML): content components and ordered question components."""

    name: str = Field(min_length=1, max_length=100)
    description: str = ""
    contents: list[ContentComponent] = Field(min_length=1)
    questions: list[QuestionComponent] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> TemplateSpec:
        keys = {c.key for c in self.contents}
        ids = [q.id for q in self.questions if q.id is not None]
        if len(ids) != len(set(ids)):
            raise ValueError("two questions share an id; give each question its own id")
        for i, q in enumerate(self.questions):
            if q.type in ("boxes", "spans", "segments") and (q.bind or "source") not in keys:
                raise ValueError(
                    f"questions[{i}].bind {q.bind!r} names no content component; content keys are {sorted(keys)}"
                )
            if q.type == "relations" and not any(p.type == "spans" for p in self.questions):
                raise ValueError(f"questions[{i}]: a relations question needs a spans question for its entities")
        return self

    def content_type(self, key: str) -> str:
        for c in self.contents:
            if c.key == key:
                return c.type
        return "text"

    def numbered(self) -> TemplateSpec:
        """Give survey and box questions without an id their 1-based position."""
        spec = self.model_copy(deep=True)
        for i, q in enumerate(spec.questions, 1):
            if q.id is None and q.type in ("single", "multi", "text", "boxes"):
                q.id = str(i)
        return spec


def _mode(multi: bool) -> str:
    return MULTI if multi else SINGLE


def _classification(kind: str, multi: bool) -> TemplateSpec:
    return TemplateSpec(
        name=f"{kind} classification",
        contents=[ContentComponent(type=kind, key="source", id="1")],
        questions=[QuestionComponent(type="multi" if multi else "single", id="2", title=_mode(multi))],
    )


def builtin(
    template_id: str, *, multi: bool = False, relation_labels: list[str] | None = None, has_labels: bool = True
) -> TemplateSpec:
    """The built-in template ``template_id`` for a task's selection mode."""
    if template_id in ("text-classification", "image-classification", "video-classification", "audio-classification"):
        return _classification(template_id.split("-")[0], multi)
    if template_id == "ner":
        return TemplateSpec(
            name="named-entity recognition",
            contents=[ContentComponent(type="text")],
            questions=[QuestionComponent(type="spans", title="NER", bind="source", label_title=NER_TITLE, multi=multi)],
        )
    if template_id == "relation":
        return TemplateSpec(
            name="entity relation",
            contents=[ContentComponent(type="text")],
            questions=[
                QuestionComponent(type="spans", title="entities", bind="source", multi=multi),
                QuestionComponent(
                    type="relations",
                    title="relations",
                    bind="source",
                    labels=relation_labels or [],
                    label_title=SINGLE,
                    multi=False,
                ),
            ],
        )
    if template_id == "object-detection":
        return TemplateSpec(
            name="object detection",
            contents=[ContentComponent(type="image")],
            questions=[QuestionComponent(type="boxes", id="1", title="目标检测标签配置", bind="source", multi=multi)],
        )
    if template_id == "ocr":
        return TemplateSpec(
            name="OCR",
            contents=[ContentComponent(type="image")],
            questions=[
                QuestionComponent(
                    type="boxes", id="1", title="OCR标签配置", bind="source", multi=multi, text_title=OCR_TEXT
                )
            ],
        )
    if template_id == "audio-segmentation":
        return TemplateSpec(
            name="audio segmentation",
            contents=[ContentComponent(type="audio")],
            questions=[
                QuestionComponent(type="segments", title="segments", bind="source", multi=multi, text_title=AUDIO_TEXT)
            ],
        )
    if template_id == "asr":
        questions = [QuestionComponent(type="text", id="1", title=AUDIO_TEXT)]
        if has_labels:
            questions.append(QuestionComponent(type="multi", id="3", title=MULTI, required=False))
        return TemplateSpec(
            name="speech to text", contents=[ContentComponent(type="audio", id="2")], questions=questions
        )
    raise BadInput(
        f"unknown template {template_id!r}; built-in templates are: {', '.join(BUILTIN_IDS)}, "
        "or the name of a custom template of this workspace",
        "template",
    )


BUILTIN = {
    "text-classification": ("text", "Text classification: one or several labels per text"),
    "ner": ("text", "Named-entity recognition: labelled spans of a text"),
    "relation": ("text", "Entity relation: labelled spans and labelled links between them"),
    "image-classification": ("image", "Image classification: one or several labels per image"),
    "object-detection": ("image", "Object detection: labelled rectangles and polygons"),
    "ocr": ("image", "OCR: boxes with their transcribed text and an optional label"),
    "video-classification": ("video", "Video classification: one or several labels per video"),
    "audio-classification": ("audio", "Audio classification: one or several labels per clip"),
    "audio-segmentation": ("audio", "Audio segmentation: labelled, transcribed time ranges"),
    "asr": ("audio", "Speech to text: a transcript and optional labels"),
}
BUILTIN_IDS = tuple(BUILTIN)
CUSTOM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def parse_spec(data: dict, field: str = "spec") -> TemplateSpec:
    """Validate a custom template given as data; errors name the component and the fix."""
    if not isinstance(data, dict):
        raise BadInput(f"{field} must be an object with name, contents and questions", field)
    try:
        return TemplateSpec.model_validate(data).numbered()
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err.get("loc", ()))
        msg = err.get("msg", "invalid").removeprefix("Value error, ")
        if err.get("type") == "extra_forbidden":
            msg = "unknown key; remove it or check its spelling"
        raise BadInput(f"{field}{'.' + loc if loc else ''}: {msg}", field) from None
