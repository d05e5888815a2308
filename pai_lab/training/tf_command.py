"""The PAI-TF command (`pai -name tensorflow1120_ext -Dscript=... -Dcluster=...`) as a job spec.

Pure functions: ``cluster_roles`` reads the ``-Dcluster`` JSON with PAI's units and defaults,
``job_values`` turns the command's -D parameters into the values of a :class:`JobSpec`, and
``stage_script`` copies a ``-Dscript`` (a .py file, a folder or a .tar.gz with ``-DentryFile``; one from
s3:// or oss:// is fetched first, by :mod:`tf_submit`) into a folder, refusing an entry outside it and
bounding what an archive may unpack to.
"""

from __future__ import annotations

import json
import shlex
import shutil
import tarfile
from pathlib import Path, PurePosixPath

from pai_lab.errors import BadInput, Conflict

ALGORITHMS = ("tensorflow", "tensorflow140", "tensorflow180_ext", "tensorflow1120_ext", "tensorflow1120_cpu_ext")
# PAI's units: cpu 100 = 1 core, gpu 100 = 1 card, memory in MB; its defaults per role
ROLE_DEFAULTS = {"ps": {"cpu": 600, "gpu": 0, "memory": 30000}, "worker": {"cpu": 600, "gpu": 100, "memory": 30000}}
# Parameters the manual's commands carry that mean nothing on this machine: accepted, answered with a note
IGNORED = {
    "project": "-project: jobs run in the workspace (-w), not a MaxCompute project",
    "arn": "-Darn: no RAM role is needed; s3:// and oss:// locations are read with the workspace's storage options",
    "ossHost": "-DossHost: the OSS endpoint comes from oss://BUCKET.ENDPOINT/... or the workspace's storage options",
    "stdoutDir": "-DstdoutDir: each pod's stdout and stderr are kept with the job (pai dlc logs JOB POD)",
    "summaryDir": "-DsummaryDir: write summaries under -DcheckpointDir; they stay with the job",
    "jobName": "-DjobName: the job is named after its entry script",
}
MAX_ARCHIVE_MEMBERS = 10_000
MAX_ARCHIVE_BYTES = 1 << 30  # unpacked
MAX_ARCHIVE_RATIO = 200  # unpacked size per packed byte: more is an archive bomb


class GpuUnavailable(Conflict):
    """GPUs asked for on a cluster that has none: the request is fine, this cluster cannot hold it."""

    code = "no_gpu"


def _whole(value, field: str, low: int = 0) -> int:
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        raise BadInput(f"{field} must be a whole number, got {value!r}", field.split(".")[0].lstrip("-D")) from None
    if number < low:
        raise BadInput(f"{field} must be {low} or more, got {number}", field.split(".")[0].lstrip("-D"))
    return number


def cluster_roles(cluster, gpus_available: bool = True) -> dict[str, dict[str, int]]:
    """``{"ps":{"count":N,...},"worker":{"count":M,"gpu":G,"cpu":C,"memory":MB}}`` with PAI's defaults.

    As on PAI a worker asks for one GPU unless it says otherwise (and a ``gpu`` of 0 is raised to 100),
    where the cluster has GPUs; on a cluster without any, a worker without a ``gpu`` runs on CPU."""
    if isinstance(cluster, str):
        try:
            cluster = json.loads(cluster)
        except ValueError as exc:
            raise BadInput(
                f'-Dcluster is not JSON ({exc}); write e.g. {{"ps":{{"count":1}},"worker":{{"count":2}}}}', "cluster"
            ) from None
    if not isinstance(cluster, dict) or not cluster:
        raise BadInput('-Dcluster must be an object such as {"worker":{"count":2}}', "cluster")
    unknown = sorted(set(cluster) - set(ROLE_DEFAULTS))
    if unknown:
        raise BadInput(f"-Dcluster: unknown role {unknown[0]!r}; the roles are ps and worker", "cluster")
    if "worker" not in cluster:
        raise BadInput('-Dcluster needs a worker role, e.g. "worker":{"count":2}', "cluster")
    roles = {}
    for role, given in cluster.items():
        if not isinstance(given, dict):
            raise BadInput(f'-Dcluster.{role} must be an object such as {{"count":2}}', "cluster")
        extra = sorted(set(given) - {"count", "cpu", "gpu", "memory"})
        if extra:
            raise BadInput(f"-Dcluster.{role}: unknown key {extra[0]!r}; keys are count, cpu, gpu, memory", "cluster")
        if "count" not in given:
            raise BadInput(f"-Dcluster.{role}.count is required (the number of {role} nodes)", "cluster")
        values = {"count": _whole(given["count"], f"-Dcluster.{role}.count")}
        for key, default in ROLE_DEFAULTS[role].items():
            values[key] = _whole(given.get(key, default), f"-Dcluster.{role}.{key}")
        if role == "worker":
            if not gpus_available and "gpu" not in given:
                values["gpu"] = 0  # CPU mode: the default GPU is PAI's, for PAI's GPU clusters
            elif gpus_available and values["gpu"] == 0:
                values["gpu"] = 100  # as PAI does, "to guarantee scheduling"
            if values["count"] < 1:
                raise BadInput("-Dcluster.worker.count must be 1 or more", "cluster")
        if values["gpu"] % 100:
            raise BadInput(
                f"-Dcluster.{role}.gpu counts cards in hundreds (100 = 1 GPU), got {values['gpu']}", "cluster"
            )
        roles[role] = values
    return roles


def _role_spec(values: dict[str, int]) -> str:
    return f"cpu={values['cpu'] / 100:g},memory={values['memory']}MiB,gpu={values['gpu'] // 100}"


def entry_of(script: str, entry: str) -> str:
    """The file the job runs: ``-DentryFile``, or the script itself when it is one .py file."""
    if entry:
        path = PurePosixPath(entry.replace("\\", "/"))
        if path.is_absolute() or ".." in path.parts or not path.name.endswith(".py"):
            raise BadInput(
                f"-DentryFile {entry!r} must be a .py file inside the script archive or folder (a relative path)",
                "entryFile",
            )
        return str(path)
    name = script.rstrip("/").rsplit("/", 1)[-1]
    if name.endswith(".py"):
        return name
    raise BadInput(f"-DentryFile is required when -Dscript is an archive or a folder ({script!r})", "entryFile")


def job_values(params: dict, gpus_available: bool) -> tuple[dict, list[str]]:
    """The command's -D parameters (names as the manual writes them) -> (JobSpec values, notes)."""
    params = {k: v for k, v in params.items() if v not in (None, "")}
    notes = [IGNORED[k] for k in IGNORED if k in params]
    script = str(params.get("script") or "").strip()
    if not script:
        raise BadInput("-Dscript is required: a .py file, a folder or a .tar.gz (with -DentryFile)", "script")
    entry = entry_of(script, str(params.get("entryFile") or "").strip())
    gpu_required = _whole(params.get("gpuRequired", 0), "-DgpuRequired")
    if gpu_required % 100:
        raise BadInput(f"-DgpuRequired counts cards in hundreds (100 = 1 GPU), got {gpu_required}", "gpuRequired")
    values: dict = {
        "name": str(params.get("jobName") or PurePosixPath(entry).stem),
        "command": f"python {shlex.quote(entry)}",
        "script": script,
        "entryFile": entry,
    }
    if "cluster" in params:
        if gpu_required:
            raise BadInput(
                "-DgpuRequired is for single-machine jobs; with -Dcluster give each role's gpu there", "gpuRequired"
            )
        roles = cluster_roles(params["cluster"], gpus_available)
        values["workers"] = roles["worker"]["count"]
        values["worker_spec"] = _role_spec(roles["worker"])
        if "ps" in roles and roles["ps"]["count"]:
            values["ps"] = roles["ps"]["count"]
            values["ps_spec"] = _role_spec(roles["ps"])
        asked = sum(r["gpu"] for r in roles.values())
    else:
        values["workers"] = 1
        values["worker_spec"] = f"gpu={gpu_required // 100}"
        asked = gpu_required
    if asked and not gpus_available:
        flag = "cluster" if "cluster" in params else "gpuRequired"
        raise GpuUnavailable(
            f"-D{flag} asks for GPUs and no worker of this cluster has one; give -D{flag} without GPUs "
            f"({'each role with gpu 0 or left out' if flag == 'cluster' else '-DgpuRequired=0'}) "
            "or add Dask workers with GPU resources",
            flag,
        )
    for key in ("checkpointDir", "hyperParameters", "userDefinedParameters", "tables", "outputs"):
        if key in params:
            values[key] = params[key]
    if "buckets" in params:  # the script's --buckets: after the platform's own (empty) one, so it wins
        given = values.get("userDefinedParameters", "")
        values["userDefinedParameters"] = f"--buckets={shlex.quote(str(params['buckets']))} {given}".strip()
    if "maxHungTimeBeforeGCInSeconds" in params:
        values["maxHungTimeBeforeGCInSeconds"] = _whole(
            params["maxHungTimeBeforeGCInSeconds"], "-DmaxHungTimeBeforeGCInSeconds"
        )
    if "enableDynamicCluster" in params:
        values["enableDynamicCluster"] = truthy(params["enableDynamicCluster"], "enableDynamicCluster")
    return values, notes


def truthy(value, field: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in ("true", "false", "1", "0"):
        raise BadInput(f"-D{field} must be true or false, got {value!r}", field)
    return text in ("true", "1")


def stage_script(source: Path, entry: str, target: Path) -> Path:
    """Copy ``-Dscript`` (``source``: a .py, a folder or a .tar.gz) into ``target``; return the entry's path."""
    target.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(
            source,
            target,
            symlinks=True,
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns(".git", "__pycache__", ".ipynb_checkpoints"),
        )
    elif source.name.endswith((".tar.gz", ".tgz", ".tar")):
        _unpack(source, target)
    elif source.name.endswith(".py"):
        shutil.copy2(source, target / source.name)
    else:
        raise BadInput(f"-Dscript {source.name!r} is neither a .py file, a folder nor a .tar.gz", "script")
    found = (target / entry).resolve()
    if not found.is_file() or target.resolve() not in found.parents:
        raise BadInput(f"-DentryFile {entry!r} is not in -Dscript {source.name!r}", "entryFile")
    return found


def _unpack(archive: Path, target: Path) -> None:
    """Unpack a tarball: regular files and folders only, inside ``target``, within the bounds."""
    packed = max(archive.stat().st_size, 1)
    try:
        with tarfile.open(archive) as tar:
            members: list[tarfile.TarInfo] = []
            total = 0
            for member in tar:
                if len(members) >= MAX_ARCHIVE_MEMBERS:
                    raise BadInput(f"-Dscript: more than {MAX_ARCHIVE_MEMBERS} files in the archive", "script")
                path = PurePosixPath(member.name)
                if path.is_absolute() or ".." in path.parts:
                    raise BadInput(f"-Dscript: {member.name!r} would unpack outside the job's code", "script")
                if not (member.isfile() or member.isdir()):
                    continue  # links and devices stay behind
                total += member.size
                if total > MAX_ARCHIVE_BYTES or total > packed * MAX_ARCHIVE_RATIO + (1 << 20):
                    bound = min(MAX_ARCHIVE_BYTES, packed * MAX_ARCHIVE_RATIO)
                    raise BadInput(
                        f"-Dscript: the archive unpacks to more than {bound} bytes; pack less, or give a folder",
                        "script",
                    )
                members.append(member)
            for member in members:
                tar.extract(member, target, filter="data")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BadInput(f"-Dscript: cannot unpack {archive.name!r}: {exc}", "script") from None
