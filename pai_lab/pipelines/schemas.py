"""The shapes of the pipelines area, defined once for routes, client and CLI."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from pai_lab.schema import Int, Name, Schema

PipelineState = Literal[
    "Initialized",
    "ReadyToSchedule",
    "Starting",
    "Running",
    "WorkflowServiceStarting",
    "Suspended",
    "Succeeded",
    "Terminated",
    "Unknown",
    "Skipped",
    "Failed",
]
MAX_ARGUMENTS = 256


class PipelineRunCreate(Schema):
    """A run of a pipeline (or of one operator): its manifest and its arguments, keyed by the pipeline's
    input names. The manifest is PAI's ``core/v1`` document, as ``Pipeline.to_dict()`` writes it."""

    manifest: dict[str, Any] = Field(description="the pipeline's (or operator's) manifest")
    arguments: dict[str, Any] = Field(
        default_factory=dict,
        max_length=MAX_ARGUMENTS,
        description="values of the pipeline's inputs: parameters, and artifacts as a path, a URL or a location JSON",
    )
    name: Name | None = Field(None, description="the run's name (PAI's job_name); default: the pipeline's identifier")
    cache: bool = Field(True, description="skip a step whose operator and inputs equal a succeeded step's")


class PipelineOutput(Schema):
    """An output of a run (PAI's ArchivedArtifact): a reference, never the data itself."""

    name: str
    kind: Literal["parameters", "artifacts"]
    producer: str  # the step that made it
    run_id: str
    value: Any
    metadata: dict = Field(default_factory=dict)


class PipelineNode(Schema):
    name: str
    node_id: str
    identifier: str
    depends: list[str]
    status: PipelineState
    reason: str = ""
    cached: bool = False
    attempt: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    outputs: dict = Field(default_factory=dict)


class PipelineRunInfo(Schema):
    id: str
    name: str
    pipeline: str
    status: PipelineState
    reason: str = ""
    created_by: str
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    attempt: int = 1
    cache: bool = True
    steps_total: int = Field(0, description="the run's steps")
    steps_done: int = Field(0, description="its steps that have ended (Succeeded, Skipped, Failed, Terminated)")


class PipelineRunDetail(PipelineRunInfo):
    nodes: list[PipelineNode] = Field(default_factory=list)
    outputs: list[PipelineOutput] = Field(default_factory=list)
    arguments: dict = Field(default_factory=dict)


class PipelineRunsQuery(Schema):
    status: PipelineState | None = None
    name: Name | None = None
    limit: int = Field(200, ge=1, le=10000)


class PipelineRunQuery(Schema):
    wait: float = Field(0, ge=0, le=30, description="seconds to wait for a change of state")
    status: PipelineState | None = Field(None, description="the state the caller has seen: answer once it changes")


class PipelineLogsQuery(Schema):
    node: Name = Field(description="the step whose log to read")
    page_offset: Int = Field(0, ge=0, description="the first line to answer")
    page_size: int = Field(100, ge=1, le=10000)
    tail: int = Field(0, ge=0, le=10000, description="answer the last this many lines instead of a page")


class NodeLogLine(Schema):
    node: str
    offset: int
    line: str


class OperatorSave(Schema):
    """Save an operator or a pipeline under an identifier and version (PAI's op.save)."""

    manifest: dict[str, Any] = Field(description="the operator's or pipeline's manifest")
    identifier: Name = Field(description="its name in the registry")
    version: Name = Field("v1", description="its version; identifier, provider and version are unique")


class SavedOperatorInfo(Schema):
    pipeline_id: str
    identifier: str
    provider: str
    version: str
    kind: str
    created_by: str
    created_at: datetime


class SavedOperatorDetail(SavedOperatorInfo):
    manifest: dict


class OperatorsQuery(Schema):
    identifier: Name | None = None
    provider: Name | None = None
    version: Name | None = None
