"""The shapes of the training area, defined once for routes, client and CLI."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field, field_validator

from pai_lab.schema import LIST_MAX, Int, Name, Schema, Text, bounded_list

JobKind = Literal["tfjob", "pytorchjob", "predictjob"]
JobState = Literal["Creating", "Queuing", "Running", "Succeeded", "Failed", "Stopping", "Stopped"]
ACTIVE_STATES = ("Creating", "Queuing", "Running", "Stopping")
STOPPABLE_STATES = ("Creating", "Queuing", "Running")
TERMINAL_STATES = ("Succeeded", "Failed", "Stopped")


def _csv(value):
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v).strip() for v in value if str(v).strip()]


class JobSpec(Schema):
    """A job as `dlc submit tfjob` describes it; field names are the dlc flags."""

    kind: JobKind = "tfjob"
    name: Name = Field(description="job name; several jobs may share it")
    command: Text = Field("", description="start command of every rank (a predictjob has its own)")
    # counts are checked by pai_lab.training.spec.build_spec, whose messages name the flag and the fix;
    # the server also refuses more ranks than PaiLabApp.max_job_ranks
    workers: int = 0
    ps: int = 0
    chief: bool = False
    masters: int = 0
    worker_image: Text = ""
    worker_spec: Text = ""
    ps_image: Text = ""
    ps_spec: Text = ""
    chief_image: Text = ""
    chief_spec: Text = ""
    master_image: Text = ""
    master_spec: Text = ""
    code_source: Text = Field("", description="a local folder or a git repository URL, seen as /root/code/")
    data_sources: list[Text] = Field(
        default_factory=list,
        max_length=LIST_MAX,
        description=(
            "datasets (NAME, NAME:VERSION) or a labeling task's answers (task:TASK), read in a rank with "
            "pai_lab.training.dataset(); a dataset's folder is also seen as /root/data/"
        ),
    )
    thirdparty_libs: list[Text] = bounded_list(description="pip packages installed per rank")
    tables: list[Text] = bounded_list(
        description="PAI-TF input tables: datasets (NAME, odps://PROJECT/tables/NAME) or table URLs; ranks get --tables"
    )
    outputs: list[Text] = bounded_list(
        description="PAI-TF output tables (a dataset's folder, s3:// or a folder); ranks get --outputs"
    )
    model: Text = Field("", description="predictjob: a SavedModel folder or URL, or a registered model NAME[:VERSION]")
    hyperParameters: Text = Field("", description="a file of key=value lines, passed as --key=value")
    userDefinedParameters: Text = Field("", description='extra script flags, e.g. "--batch_size=10"')
    checkpointDir: Text = Field("", description="where checkpoints and the SavedModel go (default: job output)")
    maxHungTimeBeforeGCInSeconds: int = Field(
        3600, description="watchdog: no training step reported for this long fails the job; 0 turns it off"
    )
    script: Text = Field("", description="PAI-TF -Dscript: a .py file, a folder or a .tar.gz, copied as the job's code")
    entryFile: Text = Field("", description="PAI-TF -DentryFile: the script in -Dscript's archive or folder")
    enableDynamicCluster: bool = Field(
        False, description="PAI-TF: a worker that exits while the job runs leaves and rejoins; the job goes on"
    )
    priority: int = Field(
        1,
        ge=1,
        le=9,
        description=(
            "1-9, higher first: when the cluster is full, waiting jobs start by priority, then in submission order"
        ),
    )

    @field_validator("data_sources", "thirdparty_libs", "tables", "outputs", mode="before")
    @classmethod
    def _split(cls, value):
        return _csv(value)


class StateChange(Schema):
    state: str
    at: datetime
    reason: str = ""


class Pod(Schema):
    name: str = Field(description="<jobId>-<role>-<index>")
    role: str
    index: int
    state: str = "Pending"
    host: str = ""
    port: int | None = None
    pid: int | None = None
    worker: str = Field("", description="the Dask worker it ran on")
    gpus: list[int] = Field(default_factory=list)
    exit_code: int | None = None


class Job(Schema):
    id: str
    name: str
    kind: str
    state: str
    workers: int
    ps: int
    chief: bool
    masters: int = 0
    created_by: str
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    reason: str = ""
    progress: str = Field("", description="PAI-TF style: worker_job:running/finished/total[pct%]")
    priority: int = Field(1, description="1-9; waiting jobs start highest first")


class JobDetail(Job):
    spec: JobSpec
    pods: list[Pod]
    history: list[StateChange]
    warnings: list[str] = Field(default_factory=list)
    work_dir: str
    output_dir: str
    model: str | None = Field(None, description="name:version of the model it registered")


FOLLOW_WAIT_SECONDS = 30.0  # a follower's long poll (`pai dlc submit`, job.wait()) when nothing needs showing sooner


class JobQuery(Schema):
    history_after: Int | None = Field(
        None,
        ge=0,
        description="long poll: answer once the job has more state changes than this (or ends, or `wait` passes)",
    )
    progress: str | None = Field(
        None,
        max_length=1000,
        description="long poll: answer also once the job's progress line differs from this (with history_after)",
    )
    wait: float = Field(10.0, gt=0, le=60, description="seconds a long poll may wait")


LogStream = Literal["stdout", "stderr"]


class LogsQuery(Schema):
    pod: Name | None = None
    stream: LogStream | None = Field(None, description="only the pod's stdout or its stderr (default: both)")
    max_events_num: int = Field(2000, ge=1, le=100000)
    start_time: datetime | None = None
    end_time: datetime | None = None
    after: Int | None = Field(None, description="only lines after this cursor (for a live tail)")


class LogLine(Schema):
    id: int = Field(description="cursor for `after`")
    pod: str
    seq: int
    time: datetime
    line: str
    stream: LogStream = "stdout"


class MetricsQuery(Schema):
    pod: Name | None = None
    after: Int | None = None


class MetricPoint(Schema):
    id: int
    pod: str
    step: int
    time: datetime
    name: str
    value: float


class Model(Schema):
    id: str
    name: str
    version: int
    path: str
    job_id: str | None = None
    created_by: str
    created_at: datetime
    description: str = ""


class ModelRegister(Schema):
    name: str
    path: str = Field(description="a SavedModel folder (local path or URI)")
    job_id: str | None = None
    description: str = ""


class ClusterWorker(Schema):
    name: str
    address: str
    cores: int
    memory: int = Field(description="bytes; 0 when unlimited")
    gpus: int
    busy_ranks: int = 0


class ClusterInfo(Schema):
    scheduler_address: str
    dashboard_link: str | None = None
    workers: list[ClusterWorker]


class EnvironmentImage(Schema):
    """An environment a job's ranks can run in (`dlc get images`): PAI's ImageUrl columns."""

    image_url: str = Field(description="the name a job's --*_image takes")
    image_url_vpc: str = Field(description="the interpreter (Local, Conda) or the Docker image")
    provider: str = Field(description="Local, Conda or Docker")
    accelerator: str = Field(description="cpu or gpu; empty for a Docker image")
    framework: str = Field(description="tensorflow, pytorch: what is installed in it (comma-separated)")


class ImagesQuery(Schema):
    framework: str | None = Field(None, description="TFJob, PyTorchJob, tensorflow or pytorch")
    device: str | None = Field(None, description="cpu or gpu")
    provider: str | None = Field(None, description="Local, Conda or Docker")
    order: str = Field("desc", description="desc (the current Python first) or asc")


class JobPriorityUpdate(Schema):
    priority: int = Field(ge=1, le=9, description="1-9, higher first; only a job still waiting may change")


class PaiTfCommand(Schema):
    """`pai -name tensorflow1120_ext -D...`: the PAI-TF command's parameters, named as the manual writes them."""

    name: Name = Field("tensorflow1120_ext", description="the algorithm (-name)")
    project: Text = Field("", description="-project (noted, not needed here)")
    script: Text = Field(description="a .py file, a folder or a .tar.gz (then entryFile names the script in it)")
    entryFile: Text = ""
    cluster: Text | dict[Name, dict[Name, Int]] = Field(
        "", description='{"ps":{"count":N},"worker":{"count":M,"gpu":100,"cpu":600,"memory":30000}}, or its JSON'
    )
    gpuRequired: Text | Int = Field("", description="single-machine job: 100 = 1 GPU, 0 = CPU")
    checkpointDir: Text = Field("", description="local or s3:// folder; the script gets it as --checkpointDir")
    enableDynamicCluster: Text | bool = Field("", description="true: a worker that fails rejoins and the job goes on")
    maxHungTimeBeforeGCInSeconds: Text | Int = Field("", description="no training step for this long fails the job")
    hyperParameters: Text = ""
    userDefinedParameters: Text = ""
    tables: Text = Field("", description="input tables, comma separated: odps://PROJECT/tables/DATASET or URLs")
    outputs: Text = Field("", description="output tables, comma separated")
    buckets: Text = Field("", description="a folder (local or s3://) the script reads, given to it as --buckets")
    jobName: Text = ""
    arn: Text = ""
    ossHost: Text = ""
    stdoutDir: Text = ""
    summaryDir: Text = ""
