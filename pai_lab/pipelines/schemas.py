"""The shapes of the pipelines area, defined once for routes, client and CLI."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from pai_lab.schema import Int, Name, Schema

RunState = Literal["Initialized", "ReadyToSchedule", "Starting", "Running", "WorkflowServiceStarting", "Suspended",
                   "Succeeded", "Terminated", "Unknown", "Skipped", "Failed"]
MAX_ARGUMENTS = 256


class RunCreate(Schema):
    """A run of a pipeline (or of one operator): its manifest and its arguments, keyed by the pipeline's
    input names. The manifest is PAI's ``core/v1`` document, as ``Pipeline.to_dict()`` writes it."""

    manifest: dict[str, Any] = Field(description="the pipeline's (or operator's) manifest")
    arguments: dict[str, Any] = Field(default_factory=dict, max_length=MAX_ARGUMENTS,
                                      description="values of the pipeline's inputs: parameters, and artifacts as a "
                                                  "path, a URL or a location JSON")
    name: Name | None = Field(None, description="the run's name (PAI's job_name); default: the pipeline's identifier")
    cache: bool = Field(True, description="skip a step whose operator and inputs equal a succeeded step's")


class Artifact(Schema):
    """An output of a run (PAI's ArchivedArtifact): a reference, never the data itself."""

    name: str
    kind: Literal["parameters", "artifacts"]
    producer: str  # the step that made it
    run_id: str
    value: Any
    metadata: dict = Field(default_factory=dict)


class Node(Schema):
    name: str
    node_id: str
    identifier: str
    depends: list[str]
    status: RunState
    reason: str = ""
    cached: bool = False
    attempt: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    outputs: dict = Field(default_factory=dict)


class Run(Schema):
    id: str
    name: str
    pipeline: str
    status: RunState
    reason: str = ""
    created_by: str
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    attempt: int = 1
    cache: bool = True


class RunDetail(Run):
    nodes: list[Node] = Field(default_factory=list)
    outputs: list[Artifact] = Field(default_factory=list)
    arguments: dict = Field(default_factory=dict)


class RunsQuery(Schema):
    status: RunState | None = None
    name: Name | None = None
    limit: int = Field(200, ge=1, le=10000)


class RunQuery(Schema):
    wait: float = Field(0, ge=0, le=30, description="seconds to wait for a change of state")
    status: RunState | None = Field(None, description="the state the caller has seen: answer once it changes")


class LogsQuery(Schema):
    node: Name = Field(description="the step whose log to read")
    page_offset: Int = Field(0, ge=0, description="the first line to answer")
    page_size: int = Field(100, ge=1, le=10000)


class LogLine(Schema):
    node: str
    offset: int
    line: str
