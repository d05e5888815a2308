"""Job specs as PAI-DLC writes them: `dlc submit tfjob` flags, job files of key=value lines,
PAI-TF hyperparameter files, `*_spec` resource names, and the pod list a spec expands to.

Pure functions: the CLI uses them to check a job before sending it, the server to check it again.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from pydantic import ValidationError

from pai_lab.errors import BadInput
from pai_lab.training.schemas import JobSpec

# Keys a job file may set: every dlc flag except `job_file` and `thirdparty_lib_dir` (CLI only).
FILE_KEYS = tuple(k for k in JobSpec.model_fields if k != "kind")
CLI_ONLY_KEYS = ("job_file", "thirdparty_lib_dir")
ROLES = ("chief", "master", "worker", "ps")  # pod order: the chief first, PS last
# Ranks one job may ask for unless the server sets PaiLabApp.max_job_ranks: a bound checked before
# anything is planned, so a job of 99999999 workers is refused at once instead of filling memory.
DEFAULT_MAX_RANKS = 16
PREDICT_COMMAND = "python -m pai_lab.pai_tf.batch_predict"

# ECS instance types from the manual's examples: (vCPU, GiB, GPUs).
ECS_TYPES = {
    "ecs.g6.large": (2, 8, 0),
    "ecs.g6.xlarge": (4, 16, 0),
    "ecs.g6.2xlarge": (8, 32, 0),
    "ecs.g6.4xlarge": (16, 64, 0),
    "ecs.g6.8xlarge": (32, 128, 0),
    "ecs.c6.large": (2, 4, 0),
    "ecs.gn6e-c12g1.3xlarge": (12, 92, 1),
    "ecs.gn6v-c8g1.2xlarge": (8, 32, 1),
    "ecs.gn6i-c4g1.xlarge": (4, 15, 1),
    "ecs.gn5-c8g1.2xlarge": (8, 60, 1),
}
_GPU_FAMILY = re.compile(r"^ecs\.g[na]\w*-c(\d+)g(\d+)\.")
_MEMORY = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgt]i?b?)?$", re.IGNORECASE)


@dataclass(frozen=True)
class Resources:
    cpu: float = 0
    memory_gib: float = 0
    gpu: int = 0


@dataclass(frozen=True)
class RankPlan:
    role: str
    index: int
    resources: Resources

    def pod(self, job_id: str) -> str:
        return f"{job_id}-{self.role}-{self.index}"


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def parse_job_file(text: str, source: str = "job file") -> dict[str, str]:
    """`key=value` lines (blank lines and `#` comments skipped); errors name the line."""
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.strip().lstrip("-")
        if not sep or not key:
            raise BadInput(f"{source} line {number}: expected key=value, got {raw.strip()!r}", "job_file")
        if key in CLI_ONLY_KEYS:
            raise BadInput(
                f"{source} line {number}: {key!r} can only be given on the command line, not in a job file", "job_file"
            )
        if key not in FILE_KEYS:
            raise BadInput(f"{source} line {number}: unknown key {key!r}; keys are: {', '.join(FILE_KEYS)}", "job_file")
        values[key] = _unquote(value)
    return values


def merge(flags: dict, job_file: dict | None) -> dict:
    """Flags given on the command line, overridden by the job file's values (as dlc does)."""
    merged = {k: v for k, v in flags.items() if v is not None}
    merged.update(job_file or {})
    return merged


def parse_resources(value: str, field: str) -> Resources:
    """`ecs.g6.4xlarge`, `ecs.gn6e-c12g1.3xlarge`, or `cpu=2,memory=4GiB,gpu=1`."""
    value = (value or "").strip()
    if not value:
        return Resources()
    if value in ECS_TYPES:
        return Resources(*ECS_TYPES[value])
    match = _GPU_FAMILY.match(value)
    if match:
        return Resources(float(match.group(1)), 0, int(match.group(2)))
    if value.startswith("ecs."):
        return Resources()  # a CPU instance type we have no size for: placement only counts GPUs
    parts: dict[str, str] = {}
    for item in value.split(","):
        key, sep, val = item.partition("=")
        key = key.strip().lower()
        if not sep or key not in ("cpu", "memory", "gpu"):
            raise BadInput(
                f"{field}: {value!r} is neither an ECS instance type (e.g. ecs.g6.4xlarge) nor cpu=N,memory=SIZE,gpu=N",
                field,
            )
        parts[key] = val.strip()
    try:
        cpu = float(parts.get("cpu", 0))
        gpu = int(parts.get("gpu", 0))
        memory = 0.0
        if "memory" in parts:
            m = _MEMORY.match(parts["memory"])
            if not m:
                raise ValueError(parts["memory"])
            unit = (m.group(2) or "g")[0].lower()
            memory = float(m.group(1)) * {"k": 1 / 2**20, "m": 1 / 1024, "g": 1, "t": 1024}[unit]
    except ValueError:
        raise BadInput(f"{field}: cannot read {value!r}; write e.g. cpu=2,memory=4GiB,gpu=1", field) from None
    if cpu < 0 or gpu < 0:
        raise BadInput(f"{field}: cpu and gpu must be 0 or more", field)
    return Resources(cpu, memory, gpu)


def build_spec(values: dict, kind: str = "tfjob", max_ranks: int | None = None) -> JobSpec:
    """Check a job's values and return its spec; every error names the flag and how to fix it.

    ``max_ranks``: the most ranks (chief, masters, workers and PS together) a job may have; the server
    passes its own (the CLI and client leave it to the server, whose limit they do not know)."""
    limit = max_ranks
    values = {k: v for k, v in values.items() if v is not None}
    values.setdefault("kind", kind)
    if values["kind"] == "predictjob" and not str(values.get("command") or "").strip():
        values["command"] = PREDICT_COMMAND  # batch prediction runs pai_lab's own program on every rank
    for key in ("name", "command"):
        if not str(values.get(key) or "").strip():
            raise BadInput(f"--{key} is required: give --{key}=... or a `{key}=` line in the job file", key)
    unknown = sorted(set(values) - set(JobSpec.model_fields))
    if unknown:
        raise BadInput(f"unknown parameter {unknown[0]!r}; parameters are: {', '.join(FILE_KEYS)}", unknown[0])
    for key in ("workers", "ps", "masters", "maxHungTimeBeforeGCInSeconds"):
        if key in values:
            try:
                number = int(str(values[key]).strip())
            except ValueError:
                raise BadInput(f"--{key} must be a whole number, got {values[key]!r}", key) from None
            if number < 0:
                raise BadInput(f"--{key} must be 0 or more, got {number}", key)
            if limit and key != "maxHungTimeBeforeGCInSeconds" and number > limit:
                raise BadInput(
                    f"--{key}={number} is more than this server allows ({limit} ranks per job; "
                    "an operator sets PaiLabApp.max_job_ranks)",
                    key,
                )
            values[key] = number
    if "chief" in values and isinstance(values["chief"], str):
        text = values["chief"].strip().lower()
        if text not in ("true", "false", "1", "0", ""):
            raise BadInput(f"--chief must be true or false, got {values['chief']!r}", "chief")
        values["chief"] = text in ("true", "1")
    try:
        spec = JobSpec.model_validate(values)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err.get("loc", ())) or None
        raise BadInput(f"--{field}: {err.get('msg')}", field) from None
    if spec.kind == "pytorchjob" and (spec.ps or spec.chief):
        raise BadInput("a pytorchjob has only masters and workers; remove --ps/--chief", "ps" if spec.ps else "chief")
    if spec.kind == "predictjob":
        _check_predict(spec)
    elif spec.model:
        raise BadInput("--model is for a predictjob (batch prediction); remove it or submit a predictjob", "model")
    if spec.workers + spec.masters + int(spec.chief) == 0:
        raise BadInput("the job has no ranks to run: give --workers=N (N >= 1)", "workers")
    total = spec.workers + spec.masters + spec.ps + int(spec.chief)
    if limit and total > limit:
        raise BadInput(
            f"the job has {total} ranks in all; this server allows {limit} per job (an operator sets "
            "PaiLabApp.max_job_ranks)",
            "workers",
        )
    for role in ("worker", "ps", "chief", "master"):
        parse_resources(getattr(spec, f"{role}_spec"), f"{role}_spec")
    if len([c for c in spec.code_source.split(",") if c.strip()]) > 1:
        raise BadInput("--code_source takes one code source only", "code_source")
    if spec.userDefinedParameters:
        try:
            shlex.split(spec.userDefinedParameters)
        except ValueError as exc:
            raise BadInput(f"--userDefinedParameters: {exc}", "userDefinedParameters") from None
    return spec


def _check_predict(spec: JobSpec) -> None:
    if spec.ps or spec.chief or spec.masters:
        raise BadInput("a predictjob has workers only; remove --ps/--chief/--masters", "workers")
    for key, what in (
        ("model", "a SavedModel folder or a registered model NAME[:VERSION]"),
        ("tables", "the input table (a dataset or a table URL)"),
        ("outputs", "the table the predictions go to"),
    ):
        if not getattr(spec, key):
            raise BadInput(f"a predictjob needs --{key}: {what}", key)
    if len(spec.tables) != 1 or len(spec.outputs) != 1:
        raise BadInput("a predictjob reads one input table and writes one output table", "tables")


def plan_ranks(spec: JobSpec) -> list[RankPlan]:
    counts = {"chief": int(spec.chief), "master": spec.masters, "worker": spec.workers, "ps": spec.ps}
    plans = []
    for role in ROLES:
        resources = parse_resources(getattr(spec, f"{role}_spec"), f"{role}_spec")
        plans += [RankPlan(role, i, resources) for i in range(counts[role])]
    return plans


def parse_hyperparameters(text: str, source: str = "hyperParameters file") -> list[str]:
    """A PAI-TF hyperparameter file (`key=value` per line, or space separated) as script flags."""
    flags = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        for item in shlex.split(line):
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise BadInput(f"{source} line {number}: expected key=value, got {item!r}", "hyperParameters")
            flags.append(f"--{key.strip().lstrip('-')}={value}")
    return flags


def progress_line(pods: list[dict]) -> str:
    """PAI-TF's run-status line: per role, running/finished/total[finished%]."""
    parts = []
    for role in ("ps", "chief", "master", "worker"):
        of_role = [p for p in pods if p["role"] == role]
        if not of_role:
            continue
        running = sum(p["state"] == "Running" for p in of_role)
        finished = sum(p["state"] in ("Succeeded", "Failed", "Stopped") for p in of_role)
        parts.append(f"{role}_job:{running}/{finished}/{len(of_role)}[{finished * 100 // len(of_role)}%]")
    return " ".join(parts)
