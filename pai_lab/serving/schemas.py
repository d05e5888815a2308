"""Shapes of the serving area, defined once: the EAS service JSON and what the API returns.

The service JSON keeps the EAS key names (``name``, ``model_path``, ``processor``,
``metadata.instance``, ``metadata.rpc.*``...). Unknown keys are refused by name, so a typo
never silently changes nothing.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from pai_lab.schema import Int, Schema, Text

NAME_RULE = re.compile(r"^[a-z][a-z0-9_]{1,62}$")
TEST_PREFIX = "test_"  # services named test_* are test services (AlgorithmDeveloper may deploy them)

RPC_DEFAULTS = {
    "batching": False,
    "keepalive": 5000,
    "io_threads": 4,
    "max_batch_size": 16,
    "max_batch_timeout": 50,
    "max_queue_size": 64,
    "worker_threads": 5,
}


class Rpc(Schema):
    batching: bool = Field(False, description="server-side dynamic batching")
    keepalive: int = Field(5000, ge=1, le=600_000, description="ms a request may take before HTTP 408")
    io_threads: int = Field(4, ge=1, le=64)
    max_batch_size: int = Field(16, ge=1, le=4096)
    max_batch_timeout: int = Field(50, ge=0, le=60_000, description="ms a batch waits to fill up")
    max_queue_size: int = Field(64, ge=1, le=100_000, description="waiting requests per instance before 450")
    worker_threads: int | None = Field(None, ge=1, le=256, description="same as metadata.workers")


class Metadata(Schema):
    # the server refuses more than PaiLabApp.max_service_instances (pai_lab.serving.deploy)
    instance: int = Field(ge=0, description="number of instances (processes)")
    workers: int = Field(5, ge=1, le=256, description="concurrent requests per instance")
    cpu: float | None = Field(None, gt=0)
    memory: int | None = Field(None, gt=0, description="MB per instance; an instance above it is OOMKilled")
    gpu: int | None = Field(None, ge=0)
    # valid as in EAS, ignored here with a warning (local_noops)
    gpu_memory: int | None = Field(None, ge=0, description="GB; ignored here: instances get whole GPUs")
    qos: Literal["", "BestEffort"] | None = Field(None, description="ignored here")
    resource: str | None = Field(
        None, max_length=256, description="resource group id; ignored (the workspace's resource group places instances)"
    )
    region: str | None = None
    rpc: Rpc = Field(default_factory=Rpc)

    @model_validator(mode="before")
    @classmethod
    def _flat_rpc_keys(cls, data: Any) -> Any:
        # EAS accepts both {"rpc": {"batching": true}} and {"rpc.batching": true}.
        if isinstance(data, dict) and any(isinstance(k, str) and k.startswith("rpc.") for k in data):
            data = dict(data)
            rpc = dict(data.get("rpc") or {})
            for key in [k for k in data if isinstance(k, str) and k.startswith("rpc.")]:
                rpc[key[4:]] = data.pop(key)
            data["rpc"] = rpc
        return data

    @property
    def concurrency(self) -> int:
        return self.rpc.worker_threads or self.workers


class ServiceSpec(Schema):
    """The EAS service JSON."""

    name: str = Field(description="lowercase letters, digits and _; starts with a letter")
    token: Text | None = None
    generate_token: bool | None = None
    model_path: Text | None = Field(
        None, description="local path, s3:// or oss:// URI, or a model (name:version, name, or training job id)"
    )
    oss_endpoint: Text | None = Field(None, description="endpoint URL of the object store for s3:// / oss://")
    model_entry: Text | None = Field(None, description="the file of model_path to load (onnx, pmml, pytorch)")
    model_config_: Any = Field(None, alias="model_config")
    processor: Text | None = Field(
        None, description="tensorflow_cpu[_<ver>] for SavedModels; onnx, pmml, easyvision, pytorch_<ver>"
    )
    processor_path: Text | None = None
    processor_entry: Text | None = None
    processor_mainclass: Text | None = None
    processor_type: Literal["python", "cpp", "java"] | None = None
    warm_up_data_path: Text | None = None
    metadata: Metadata

    model_config = ConfigDict(extra="forbid", populate_by_name=True, protected_namespaces=())

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME_RULE.match(value):
            raise ValueError(
                "use 2 to 63 characters: lowercase letters, digits and '_', starting with a "
                "letter (for example 'mnist_saved_model')"
            )
        return value

    @field_validator("generate_token", mode="before")
    @classmethod
    def _bool_string(cls, value: Any) -> Any:
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        return value

    def dump(self) -> dict:
        """The JSON form with EAS key names, unset keys left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def local_noops(config: dict, uses_model_entry: bool) -> list[str]:
    """One line per key of the service JSON that is valid but means nothing on this server, and why:
    answered with the service (``warnings``) so a key never seems to work while it does nothing."""
    meta = config.get("metadata") or {}
    rpc = meta.get("rpc") or {}
    notes = []
    if config.get("model_entry") and not uses_model_entry:
        notes.append(
            "model_entry is ignored: this processor loads the whole model folder (it names one file "
            "for onnx, pmml, pytorch and Python processors)"
        )
    if meta.get("gpu_memory"):
        notes.append(
            "metadata.gpu_memory is ignored: instances here get whole GPUs (metadata.gpu); sharing a GPU "
            "by memory needs the cloud's scheduler"
        )
    if meta.get("qos"):
        notes.append("metadata.qos is ignored: instances here are processes without CPU quotas to share")
    if meta.get("resource"):
        notes.append(
            "metadata.resource is ignored: a service's instances run where its workspace's resource group "
            "is (the serving gateway for `default`, the group's Dask workers for a group with a scheduler of "
            "its own); the workspace's Owner or an Administrator chooses it with `pai eascmd resource use`"
        )
    if rpc.get("io_threads", RPC_DEFAULTS["io_threads"]) != RPC_DEFAULTS["io_threads"]:
        notes.append(
            "metadata.rpc.io_threads is ignored: the gateway's network I/O is one event loop for all "
            "services (metadata.workers sets the model calls at once)"
        )
    return notes


class ServicePatch(Schema):
    """A partial service JSON (`eascmd modify -s`, `PATCH`): only the keys to change."""

    model_config = ConfigDict(extra="allow")


class CreateQuery(Schema):
    relate: bool = Field(False, description="blue-green: create <name>_<8 hex> next to the service `name`")


class ReleaseBody(Schema):
    weight: int = Field(ge=0, le=100, description="percent of the entry endpoint's traffic for this service")


class VersionBody(Schema):
    version: Int = Field(ge=1)


class Service(Schema):
    """A service as listed (`eascmd ls`, the sidebar)."""

    name: str
    workspace: str
    state: str
    instances_ready: int
    instances_total: int
    endpoint: str | None = Field(description="URL of /api/predict/<name>, null when closed by a release")
    service_path: str
    traffic: dict[str, int] | None = Field(description="{service: percent} on this entry endpoint, or null")
    weight: int = 0
    parent: str | None = None
    test: bool = False
    current_version: int
    latest_version: int
    created_by: str
    created_at: datetime
    updated_at: datetime
    message: str = ""
    fatal: bool = Field(
        False,
        description="the service failed in a way restarting cannot heal (a model or "
        "processor that cannot load): fix it instead of waiting",
    )


class ServiceDetail(Service):
    """`eascmd desc`: the service with its token and effective configuration."""

    token: str | None
    config: dict
    model_dir: str | None = Field(None, description="the folder the instances load (model_path resolved)")
    stats: dict[str, float] = Field(default_factory=dict, description="requests, errors, latency_ms_sum...")
    class_names: list[str] | None = Field(
        None,
        description="the model's class list (class_names.json beside "
        "its SavedModel): predictions carry label and score",
    )
    warnings: list[str] = Field(
        default_factory=list,
        description="keys of the service JSON that are valid but mean nothing on this server, and why",
    )


class Instance(Schema):
    """`eascmd w`: one instance process."""

    name: str
    version: int
    inner_ip: str
    host_ip: str
    start_at: datetime | None
    restarts: int
    status: str
    ready: str
    reason: str = ""
    last_state: dict | None = None
    pid: int | None = None
    draining: bool = False
    fatal: bool = Field(False, description="its last start failed in a way restarting cannot heal")
    gpus: list[str] = Field(
        default_factory=list, description="the GPUs the instance is pinned to, as CUDA_VISIBLE_DEVICES names them"
    )
    worker: str = Field(
        "", description="the Dask worker hosting it when its workspace's resource group has workers of its own"
    )


class ServiceVersion(Schema):
    version: int
    created_at: datetime
    current: bool
    config: dict


# --------------------------------------------------------------------------- autoscaling (eascmd autoscale)

SCALE_METRICS = ("qps", "cpu")


class ScaleStrategy(Schema):
    metricName: str = Field(
        description="qps: requests per second per ready instance; cpu: percent of one core per instance"
    )
    threshold: float = Field(description="the value per instance the autoscaler keeps the service at (> 0)")


class ScaleWindow(Schema):
    stabilizationWindowSeconds: int = Field(
        description="seconds a change must keep being recommended before it is made (0 to 3600)"
    )


class ScaleOnZero(Schema):
    scaleDownGracePeriodSeconds: int = Field(600, description="accepted for the cloud's API; min is at least 1 here")


class ScaleBehavior(Schema):
    scaleUp: ScaleWindow | None = Field(None, description="default 0 s: scale up at once")
    scaleDown: ScaleWindow | None = Field(None, description="default 300 s")
    onZero: ScaleOnZero | None = None


class AutoscalerSpec(Schema):
    """The body of `PUT .../autoscaler`, as EAS's API takes it."""

    min: int = Field(description="fewest instances, at least 1")
    max: int = Field(description="most instances, more than min (and at most the server's max_service_instances)")
    scaleStrategies: list[ScaleStrategy] = Field(max_length=len(SCALE_METRICS), description="qps and/or cpu")
    behavior: ScaleBehavior | None = None


class ScaleEvent(Schema):
    at: datetime
    kind: str = Field(description="ScaleUp, ScaleDown or AutoscalerPaused")
    from_instances: int | None = None
    to_instances: int | None = None
    message: str = ""


class Autoscaler(AutoscalerSpec):
    """A service's autoscaler: the policy, what it sees and decides, and what it did."""

    service: str
    instances: int = Field(description="instances the service is set to now")
    ready: int = Field(description="instances ready now")
    target: int = Field(description="instances the autoscaler wants once its windows agree")
    metrics: dict[str, float] = Field(default_factory=dict, description="the latest per-instance qps and cpu seen")
    created_by: str
    updated_at: datetime
    events: list[ScaleEvent] = Field(default_factory=list, description="the latest scale events, newest first")
