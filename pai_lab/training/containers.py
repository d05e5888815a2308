"""A rank whose ``*_image`` is a Docker image (listed by `dlc get images` when a daemon answers): its
command runs in a container on its worker, with the host's network (TF_CONFIG's ports are the worker's),
as the worker's OS user, and seeing what a sandboxed rank sees: the roots read-only, the state folder
hidden, the job's output and checkpoint folders writable (the plan of :func:`isolation.sandbox_plan`).
Variables go by name (``--env KEY``), so no value, the job token included, is on a command line.
Metrics travel as ``[metrics]`` log lines (no pipe crosses into a container)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

# the rank's variables a container gets: pai_lab's, the frameworks' and the GPU pin
PASSED_PREFIXES = ("PAI_", "TF_", "CUDA_", "MASTER_", "NCCL_")
PASSED_NAMES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
NOT_PASSED = ("PAI_LAB_METRICS_FD",)  # a descriptor of the worker's process means nothing in a container
# what pai_lab.training.report prints where it has no metrics pipe: "[metrics] step 10: loss=0.5, accuracy=0.9"
METRIC_LINE = re.compile(r"^\[metrics\] step (-?\d+): (.*)$")


def container_name(pod: str) -> str:
    return f"pai-{pod}"


def docker() -> str:
    return shutil.which("docker") or "docker"


def rank_argv(image: str, pod: str, argv: list[str], cwd: str, env: dict, view: dict, also: list[str]) -> list[str]:
    """The ``docker run`` of one rank (pure: starts nothing). ``view`` is the sandbox plan (read_only,
    hidden, shown_again, writable); ``also``: more variable names to pass (the command's assignments)."""
    args = [
        docker(),
        "run",
        "--rm",
        "--init",
        "--name",
        container_name(pod),
        "--label",
        f"pai_lab.pod={pod}",
        "--network",
        "host",
        "--security-opt",
        "no-new-privileges",
        "--user",
        f"{os.getuid()}:{os.getgid()}",
        "--workdir",
        cwd,
        "--env",
        "HOME=/tmp",
    ]
    for path in view.get("read_only", []):
        if os.path.exists(path):
            args += ["--volume", f"{path}:{path}:ro"]
    for path in view.get("hidden", []):
        if os.path.isdir(path):
            args += ["--tmpfs", path]
        elif os.path.exists(path):
            args += ["--volume", f"/dev/null:{path}:ro"]
    for path in view.get("shown_again", []):
        if os.path.exists(path):
            args += ["--volume", f"{path}:{path}:ro"]
    for path in view.get("writable", []):
        args += ["--volume", f"{path}:{path}"]
    names = {k for k in env if (k.startswith(PASSED_PREFIXES) or k in PASSED_NAMES) and k not in NOT_PASSED}
    for key in sorted(names | set(also)):
        args += ["--env", key]  # the value comes from the docker client's environment
    return [*args, image, *argv]


def remove(pod: str) -> None:
    """End the rank's container (the docker client ending does not end it)."""
    try:
        subprocess.run([docker(), "rm", "-f", container_name(pod)], capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        pass


def metric_from_line(text: str) -> tuple[int, dict[str, float]] | None:
    """A ``[metrics]`` line of a container's output as (step, values); None for any other line."""
    found = METRIC_LINE.match(text.strip())
    if found is None:
        return None
    values = {}
    for item in found.group(2).split(", "):
        name, _, value = item.partition("=")
        try:
            values[name.strip()] = float(value)
        except ValueError:
            continue
    return (int(found.group(1)), values) if values else None
