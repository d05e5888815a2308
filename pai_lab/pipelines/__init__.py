"""PAI's Pipeline SDK on pai_lab: operators, steps, pipelines and runs, executed on Dask.

    from pai_lab.pipelines import ScriptOperator, PipelineParameter, PipelineArtifact, PipelineStep, Pipeline

The manual's code runs with its imports changed. The SDK objects (this package's ``types``,
``operators``, ``pipeline``, ``manifest``) know nothing of the server; runs live in the control plane
(``service``, ``driver``, ``executors``) and are reached with ``ws.pipelines`` or ``op.run()``.
"""

from pai_lab.pipelines.container import ContainerOperator
from pai_lab.pipelines.manifest import dumps, loads
from pai_lab.pipelines.operators import FunctionOperator, OperatorBase, SavedOperator, ScriptOperator, component
from pai_lab.pipelines.pipeline import Pipeline, PipelineStep
from pai_lab.pipelines.status import PipelineRunStatus
from pai_lab.pipelines.types import (
    DataType,
    LocationArtifactMetadata,
    LocationType,
    MetadataBuilder,
    ParameterType,
    PipelineArtifact,
    PipelineError,
    PipelineParameter,
)

ProviderAlibabaPAI = "pai"


def gen_temp_table(prefix: str = "pai_temp_") -> str:
    """A unique table name (PAI's helper, evaluated when the pipeline is built)."""
    import uuid

    return prefix + uuid.uuid4().hex


def gen_run_node_scoped_placeholder(suffix: str | None = None) -> str:
    """A name unique per run and step: the driver fills in the placeholders when the step runs."""
    return "${pai_system_node_id}_${pai_system_run_id}" + (f"_{suffix}" if suffix else "")


def __getattr__(name: str):
    # the run handles talk to the server: loaded on first use, so the SDK imports no HTTP client
    if name in ("PipelineRun", "ArchivedArtifact"):
        from pai_lab.client import pipelines as client

        return getattr(client, name)
    if name == "Context":
        from pai_lab.pipelines.context import Context

        return Context
    raise AttributeError(name)


__all__ = [
    "ArchivedArtifact",
    "ContainerOperator",
    "Context",
    "DataType",
    "FunctionOperator",
    "LocationArtifactMetadata",
    "LocationType",
    "MetadataBuilder",
    "OperatorBase",
    "ParameterType",
    "Pipeline",
    "PipelineArtifact",
    "PipelineError",
    "PipelineParameter",
    "PipelineRun",
    "PipelineRunStatus",
    "PipelineStep",
    "ProviderAlibabaPAI",
    "SavedOperator",
    "ScriptOperator",
    "component",
    "dumps",
    "gen_run_node_scoped_placeholder",
    "gen_temp_table",
    "loads",
]
