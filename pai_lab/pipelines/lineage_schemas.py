"""The shapes of lineage and of the actions on a run's outputs (register, deploy), defined once for
routes, client and widget."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from pai_lab.schema import Name, Schema

LineageKind = Literal["dataset", "model", "service"]


class LineageRecord(Schema):
    """What made one object: the run and its step, the operator it ran and the inputs it was given."""

    kind: LineageKind
    name: str
    version: str = Field("", description="the dataset's or model's version; empty for a service")
    run_id: str
    run_name: str = ""
    run_status: str | None = Field(None, description="the run's state now; null when the run was deleted")
    step: str
    operator: str = ""
    inputs: dict = Field(default_factory=dict)
    created_by: str
    created_at: datetime


class LineageQuery(Schema):
    version: Name | None = Field(None, description="only this version (default: every version)")


class OutputRegister(Schema):
    """Register a run's output: a model (a SavedModel folder or a registered model) or a dataset version."""

    kind: Literal["model", "dataset"] = "model"
    name: Name = Field(description="the model's or dataset's name; an existing one gets a new version")
    step: Name | None = Field(None, description="the step that made the output, when several made one so named")
    description: str = Field("", max_length=2000)


class OutputDeploy(Schema):
    """Deploy a run's model output as a service (registered first when it is a folder)."""

    service: Name = Field(description="the service's name: lowercase letters, digits and '_'")
    model_name: Name | None = Field(None, description="the name to register a folder under (default: the service's)")
    step: Name | None = None
    processor: Name | None = Field(
        None,
        description="the serving processor; by default the one the model's format calls for (pmml for a PMML "
        "file, onnx, pytorch for TorchScript, tensorflow_cpu for a SavedModel)",
    )
    instance: int = Field(1, ge=1, le=64, description="instances to run")


class OutputAction(Schema):
    """What a register or deploy made, with its lineage."""

    kind: LineageKind
    name: str
    version: str = ""
    endpoint: str | None = None
    lineage: LineageRecord
