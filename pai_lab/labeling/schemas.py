"""Labeling request and response shapes, defined once for the routes, the client and the CLI."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from pai_lab.schema import LIST_MAX, TEXT_MAX, Int, Name, NonEmptyName, Schema, Text, bounded_list

FlowName = Literal["label", "label-check", "label-accept", "label-check-accept"]
Stage = Literal["label", "check", "accept"]
ExportFormat = Literal["itag", "easyvision", "label-studio", "coco", "yolo", "conll", "tfrecord"]
ImportFormat = Literal["itag", "label-studio", "coco", "easyvision"]
# a label given by name alone: the same bounds as LabelSpec.name, checked while the request is parsed
LabelName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]


class LabelSpec(Schema):
    name: str = Field(min_length=1, max_length=64)
    color: str | None = Field(None, pattern=r"^#[0-9a-fA-F]{6}$", description="#rrggbb shown by the widgets")
    hotkey: str | None = Field(None, max_length=16, description="a key that picks this label")


class TemplateInfo(Schema):
    id: str = Field(description="a built-in id (e.g. `object-detection`) or a custom template's name")
    kind: Literal["builtin", "custom"]
    media: str
    description: str
    spec: dict | None = None
    created_by: str | None = None
    created_at: datetime | None = None


class TemplateCreate(Schema):
    spec: dict = Field(description="name, description, contents: [...], questions: [...]")


class TaskCreate(Schema):
    name: Name = Field(description="1-100 characters; starts with a letter, digit or CJK character; _ and - allowed")
    template: Name = Field(description="a built-in template id or a custom template's name")
    description: Text = ""
    dataset: Name | None = Field(None, description="the dataset to label")
    dataset_version: Int | None = Field(None, description="its version (default: the latest)")
    lines: list[dict] | None = Field(None, description="manifest lines given inline instead of a dataset")
    labels: list[LabelName | LabelSpec] = bounded_list()
    multi: bool = Field(False, description="one selection may carry several labels")
    relation_labels: list[LabelName] = bounded_list(description="relation template: relation names")
    content_keys: dict[Name, Name] = Field(
        default_factory=dict, max_length=64, description="template content key -> manifest key, e.g. {source: url}"
    )
    flow: FlowName = "label"
    check_ratio: float = Field(1.0, gt=0, le=1, description="share of each package's items checked")
    package_size: int | None = Field(None, ge=1, le=200, description="items per package (fixed-size packaging)")
    package_by: Name | None = Field(None, description="one package per value of this manifest field instead")
    labelers: list[NonEmptyName] = bounded_list()
    checkers: list[NonEmptyName] = bounded_list()
    acceptors: list[NonEmptyName] = bounded_list()
    admins: list[NonEmptyName] = bounded_list()


class TaskCopy(Schema):
    name: Name


class TaskPeople(Schema):
    labelers: list[NonEmptyName] | None = Field(None, max_length=LIST_MAX)
    checkers: list[NonEmptyName] | None = Field(None, max_length=LIST_MAX)
    acceptors: list[NonEmptyName] | None = Field(None, max_length=LIST_MAX)
    admins: list[NonEmptyName] | None = Field(None, max_length=LIST_MAX)


class Task(Schema):
    id: str = Field(description="19-digit task id, as in the export keys label-<id>")
    name: str
    template: str
    state: str
    total: int
    labeled: int
    checked: int
    accepted: int
    rejected: int = 0
    skipped: int = 0
    packages_left: int = 0
    my_roles: list[str] = Field(default_factory=list, description="labeler, checker, acceptor, admin")
    description: str = ""
    flow: str = "label"
    labels: list[LabelSpec] = Field(default_factory=list)
    multi: bool = False
    check_ratio: float = 1.0
    package_size: int | None = None
    package_by: str | None = None
    people: dict[str, list[str]] = Field(default_factory=dict)
    dataset: str | None = None
    dataset_version: int | None = None
    spec: dict = Field(default_factory=dict)
    created_by: str = ""
    created_at: datetime | None = None


class Package(Schema):
    number: int
    key: str | None = None
    size: int
    state: str
    holder: str | None
    labeler: str | None
    rework: int
    comment: str
    done: int = Field(description="items answered in the package's current stage")
    actions: list[str] = Field(default_factory=list, description="moves the flow allows now")


class PackageClaim(Schema):
    stage: Stage = "label"


class PackageVerdict(Schema):
    comment: Text = ""


class PackageReassign(Schema):
    to: Name = Field(description="the member who gets the package")


class TaskItem(Schema):
    seq: int = Field(description="the item's position in the task (0-based)")
    package: int
    data: dict
    sampled: bool
    skipped: str | None
    label: list | None
    check: list | None
    verify: list | None
    prelabel: list | None = Field(None, description="a suggestion from a model or a file, never an answer")
    prelabel_source: str | None = None
    prelabel_score: float | None = Field(None, description="the suggestion's confidence (0-1)")
    prelabel_scores: dict[str, float] | None = Field(None, description="{class: probability} behind the suggestion")
    origins: dict[str, str] = Field(
        default_factory=dict,
        description="stage -> prediction, prediction-changed "
        "(a suggestion was kept or changed) or manual (there was none)",
    )
    revision: int = 0


class AnswerSubmit(Schema):
    item: Int = Field(description="the item's seq")
    client_id: str | None = Field(
        None, max_length=128, description="unique per answer; a retry with the same id stores nothing new"
    )
    stage: Stage | None = Field(None, description="default: the stage of the package you hold")
    results: list | None = Field(None, description="the iTAG results list")
    answer: Any = Field(None, description="a simple answer, converted to results (see docs)")
    skip: str | None = Field(None, max_length=TEXT_MAX, description="mark the item invalid, with this reason")


class Progress(Schema):
    total: int
    labeled: int = Field(description="items labeled or skipped")
    checked: int
    accepted: int


class AnswerAck(Schema):
    id: int
    item: int
    stage: str
    revision: int
    client_id: str | None
    author: str
    created_at: datetime
    duplicate: bool = Field(False, description="this client_id was already stored; nothing new was written")
    progress: Progress | None = Field(None, description="the task's counters once this answer is stored")


class OpenItem(TaskItem):
    done: bool = Field(description="nothing more is needed in the opened stage (answered, skipped, not sampled)")
    answer: Any = Field(None, description="the answer the item opens with in the stage, as a simple answer")
    suggestion: Any = Field(None, description="the pre-label as a simple answer")


class StageInfo(Schema):
    name: str
    column: str = Field(description="the item field this stage's answers go to")
    shows: list[str] = Field(description="the answers an item opens with, the stage's own first")
    counter: str = Field(description="the task counter an item's first answer in this stage moves")
    items: str = Field(description="which of a package's items the stage shows")


class Opened(Schema):
    """What a labeler opens in one request."""

    task: Task
    stage: StageInfo
    package: Package | None = Field(description="the package held in the stage, or the next from its pool")
    items: list[OpenItem]
    progress: Progress


class AnswerHistory(Schema):
    id: int
    stage: str
    revision: int
    results: list | None
    skip_reason: str | None
    author: str
    client_id: str | None
    created_at: datetime


class Prelabel(Schema):
    item: Int
    results: list | None = None
    answer: Any = None
    score: float | None = Field(None, ge=0, le=1, description="confidence of the suggested answer")
    scores: dict[str, float] | None = Field(None, description="{class name: probability}, for uncertainty order")


class TaskOrder(Schema):
    by: Name = Field(
        description="least_confidence, margin, entropy (most uncertain first), random; typical (image tasks, "
        "before any suggestion: the next package covers the images' dense regions) or cluster_margin (image "
        "tasks: the next package holds uncertain suggestions that are not alike)"
    )
    seed: Int | None = Field(
        None, description="random order: the seed (default: a fresh one); typical, cluster_margin: k-means' (default 0)"
    )


class OrderResult(Schema):
    by: str
    packages: int = Field(description="packages repacked (the ones nobody has claimed or answered)")
    items: int = Field(description="the items they hold, now in the new order")
    scored: int = Field(description="of those, items with a scored suggestion (the rest go last)")


class PrelabelBatch(Schema):
    source: str = Field(description="where the suggestions come from, e.g. model:resnet or file:preds.json")
    items: list[Prelabel]


class PersonStats(Schema):
    user: str
    stage: str
    items: int
    items_per_hour: float | None
    first: datetime | None
    last: datetime | None


class LabelerAgreement(Schema):
    labeler: str
    checked: int
    agreed: int
    accuracy: float | None


class TaskStats(Schema):
    total: int
    labeled: int
    checked: int
    accepted: int
    rejected: int
    skipped: int
    packages: dict[str, int]
    packages_left: int
    people: list[PersonStats]
    agreement: float | None = Field(description="share of checked items whose check answer equals the label")
    by_labeler: list[LabelerAgreement]
    suggested: int = Field(0, description="items with a suggestion (pre-label)")
    suggestions_accepted: int = Field(0, description="label answers equal to the suggestion they were shown")
    suggestions_changed: int = Field(0, description="label answers that changed the suggestion")


class ExportRequest(Schema):
    format: ExportFormat = "itag"
    to: Text = Field(description="a local path or an s3:// URI (a folder for yolo and tfrecord)")
    register_as: Name | None = Field(None, description="also register the result as (a new version of) this dataset")
    options: dict[str, Any] = Field(default_factory=dict, description="format options, e.g. test_ratio")
    storage_options: dict[str, Any] = Field(default_factory=dict, description="fsspec options for `to`")
    overwrite: bool = Field(False, description="replace `to` if it exists (else 409)")


class ExportQuery(Schema):
    format: ExportFormat = "itag"


class ExportResult(Schema):
    format: str
    to: str
    items: int
    files: list[str]
    dataset: str | None = None
    dataset_version: int | None = None
    notes: list[str] = Field(default_factory=list, description="options taken but ignored here, and why")


class ConvertRequest(Schema):
    """EasyVision's ``convert`` of an annotation CSV to TFRecord, with the manual's parameter names."""

    cmd: Literal["convert"] = "convert"
    label_file: Text = Field(description="the EasyVision CSV: a path or an s3:// URI")
    output_tfrecord: Text = Field(description="prefix of the shards: <prefix>_train_00000.tfrecord ...")
    convert_param_config: str = Field("", max_length=TEXT_MAX, description="--key value options, as in the manual")
    options: dict[str, Any] = Field(default_factory=dict, description="the same options as a JSON object")
    buckets: str | None = Field(None, max_length=TEXT_MAX, description="taken and ignored (paths are read as given)")
    arn: str | None = Field(None, max_length=TEXT_MAX, description="taken and ignored (no RAM roles here)")
    ossHost: str | None = Field(None, max_length=TEXT_MAX, description="taken and ignored")
    cluster: str | None = Field(None, max_length=TEXT_MAX, description="taken and ignored (one process converts)")
    storage_options: dict[str, Any] = Field(default_factory=dict, description="fsspec options for s3:// paths")
    overwrite: bool = Field(False, description="replace existing shards of this prefix (else 409)")


class ImportRequest(Schema):
    format: ImportFormat = "itag"
    name: Name
    template: Name | None = Field(None, description="default: guessed from the file")
    content: str = Field(description="the file's text")
    labels: list[LabelName | LabelSpec] = bounded_list(description="default: the labels in the file")
    multi: bool | None = None
    flow: FlowName | None = Field(None, description="default: the stages present in the file")
    package_size: int | None = Field(None, ge=1, le=200)
    as_prelabels: bool = Field(False, description="keep the answers as suggestions to review, not as answers")
    keep_id: bool = Field(True, description="reuse the task id of label-<id> keys when it is free")
    base: Text | None = Field(
        None, description="EasyVision: the folder (or s3:// prefix) relative image and mask URLs are taken from"
    )
