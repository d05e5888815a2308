"""PAI's ContainerOperator: a step that is an image and a command, run under Docker on the worker.

The container gets PAI's container contract through a bind mount of the step's work folder at
``/work`` (PAI's ``<container-work>``): its parameters as files under ``inputs/parameters/`` and in
``PAI_INPUTS_PARAMETERS``, its input artifacts' pointers under ``inputs/artifacts/<name>/data`` (a local
file or folder they point at is mounted read-only at the same path), the ``PAI_*`` variables, and it
writes ``outputs/artifacts/<name>/data`` (or files beside it) and ``outputs/parameters/<name>``, which the
worker reads back once the container ends.

Where the worker has no Docker (no ``docker`` binary, or no daemon at ``DOCKER_HOST`` / the default
socket) the step fails with why and what to use instead; :func:`docker_problem` is that one check.
Docker on a worker is root on that machine: give workers a daemon only where every member who may run
pipelines may have that.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
from typing import Any

from pai_lab.pipelines.operators import OperatorBase
from pai_lab.pipelines.types import PipelineError

CONTAINER_WORK_DIR = "/work"
DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
MAX_COMMAND_ARGS = 256
MAX_ARG_CHARS = 16384
# registry/name:tag or @digest; never a leading "-", so an image can not be read as a docker flag
IMAGE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]{0,254}$")
INSTEAD = (
    "run the step as a ScriptOperator (a folder of Python with an entry file) or a FunctionOperator, "
    "which need no Docker"
)


def docker_host() -> str:
    return os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST


def docker_problem(host: str | None = None) -> str | None:
    """Why Docker can not run a container here (None: it can): no docker binary, or no daemon answering."""
    if shutil.which("docker") is None:
        return "there is no docker binary on this worker's PATH"
    host = host or docker_host()
    try:
        if host.startswith("unix://"):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(3)
                s.connect(host[len("unix://") :])
        elif host.startswith("tcp://"):
            address, _, port = host[len("tcp://") :].rstrip("/").rpartition(":")
            socket.create_connection((address, int(port)), timeout=3).close()
    except (OSError, ValueError):
        return f"the Docker daemon is not reachable at {host}"
    return None  # another scheme (ssh://...) is the docker CLI's to reach


def unavailable_message(problem: str) -> str:
    return f"a ContainerOperator step runs under Docker, and {problem}; start Docker there, or {INSTEAD}"


def check_spec(body: dict, where: str) -> None:
    """The manifest's ``spec.container``: an image, a command, text variables (checked where every manifest is)."""
    from pai_lab.pipelines.manifest_shapes import check_envs

    image = body.get("image")
    if not isinstance(image, str) or not IMAGE_PATTERN.match(image):
        raise PipelineError(
            f"{where}.image: {image!r} is not an image reference (like python:3 or registry/name:tag)",
            f"{where}.image",
        )
    command = body.get("command")
    if (
        not isinstance(command, list)
        or not command
        or len(command) > MAX_COMMAND_ARGS
        or not all(isinstance(a, str) and len(a) <= MAX_ARG_CHARS for a in command)
    ):
        raise PipelineError(
            f"{where}.command: a list of 1 to {MAX_COMMAND_ARGS} strings, e.g. "
            '["python", "-c", "print(1)"] (each at most '
            f"{MAX_ARG_CHARS} characters)",
            f"{where}.command",
        )
    if body.get("imageRegistryConfig"):
        raise PipelineError(
            f"{where}.imageRegistryConfig: registry credentials are not kept in manifests (members can read "
            "them); log the workers in to the registry with docker login instead",
            f"{where}.imageRegistryConfig",
        )
    check_envs(body.get("envs"), f"{where}.envs")


def container_name(plan: dict) -> str:
    return f"pai-{plan['run_id']}-{plan['node_id']}"


def local_inputs(artifacts: dict) -> list[str]:
    """Local files and folders the input pointers name: mounted read-only where the pointer says (a run's
    plan says which of them its step may read: ``mounts``, from :func:`pai_lab.pipelines.step_plans.task_plan`)."""
    found = []
    for value in artifacts.values():
        uri = str(((value or {}).get("location") or {}).get("uri") or "") if isinstance(value, dict) else ""
        if uri.startswith("file://"):
            path = os.path.normpath(uri[len("file://") :])
            if os.path.isabs(path) and ":" not in path and "," not in path:
                found.append(path)
    return sorted(set(found))


def docker_argv(plan: dict, variables: dict[str, str], *, user: str | None = None, docker: str = "docker") -> list[str]:
    """The ``docker run`` command of a container step (pure: reads nothing, starts nothing).

    ``variables`` are the PAI ones (``PAI_WORK_DIR`` becomes ``/work``, where the step's folder is
    mounted); the operator's own ``env`` comes last, as PAI injects it."""
    argv = [
        docker,
        "run",
        "--rm",
        "--name",
        container_name(plan),
        "--label",
        f"pai_lab.run={plan['run_id']}",
        "--label",
        f"pai_lab.node={plan['node_id']}",
        "--security-opt",
        "no-new-privileges",
        "--volume",
        f"{plan['work_dir']}:{CONTAINER_WORK_DIR}",
        "--workdir",
        CONTAINER_WORK_DIR,
    ]
    if user:
        argv += ["--user", user]
    mounts = plan["mounts"] if "mounts" in plan else [[p, p] for p in local_inputs(plan.get("artifacts") or {})]
    for source, path in mounts:
        argv += ["--volume", f"{source}:{path}:ro"]
    env = {
        **variables,
        "PAI_WORK_DIR": CONTAINER_WORK_DIR,
        **{str(k): str(v) for k, v in (plan.get("env") or {}).items()},
    }
    for key in sorted(env):
        argv += ["--env", f"{key}={env[key]}"]
    return [*argv, plan["image"], *plan["command"]]


def step_plan(spec: dict) -> dict:
    """What the driver hands the worker of a container step."""
    body = spec["container"]
    return {"image": body["image"], "command": list(body["command"]), "env": dict(body.get("envs") or {})}


class ContainerOperator(OperatorBase):
    """An image and a command as a step (PAI's ContainerOperator), run under Docker on a worker.

    ``ContainerOperator(image_uri, command, image_registry_config=None, inputs=None, outputs=None, env=None,
    identifier=None, version=None, provider=None)``, as in PAI's SDK."""

    def __init__(
        self,
        image_uri: str,
        command: list[str] | str,
        image_registry_config: dict | None = None,
        inputs=None,
        outputs=None,
        env: dict | None = None,
        identifier: str | None = None,
        version: str | None = None,
        provider: str | None = None,
    ):
        super().__init__(inputs, outputs, identifier, version, provider)
        if isinstance(command, str):
            command = ["sh", "-c", command]
        self.image_uri = image_uri
        self.command = list(command or [])
        self.env = {str(k): str(v) for k, v in (env or {}).items()}
        body: dict[str, Any] = {"image": image_uri, "command": self.command, "envs": self.env}
        if image_registry_config:
            body["imageRegistryConfig"] = image_registry_config
        check_spec(body, "ContainerOperator")  # the server checks the same again

    def spec_to_dict(self) -> dict:
        spec = super().spec_to_dict()
        spec["container"] = {"image": self.image_uri, "command": list(self.command)}
        if self.env:
            spec["container"]["envs"] = dict(self.env)
        return spec

    def run(  # PAI's local_mode, keyword-only beside the base's arguments
        self, job_name: str | None = None, arguments: dict | None = None, *args, local_mode: bool = False, **kwargs
    ):
        """Run on the pai_lab control plane. ``local_mode=True`` (PAI: Docker on this machine) first checks
        that Docker answers here and fails at once, with why, when it does not; the run itself goes to the
        control plane, whose workers are this machine's by default."""
        if local_mode:
            problem = docker_problem()
            if problem:
                raise PipelineError(unavailable_message(problem), "local_mode")
        return super().run(job_name, arguments, *args, **kwargs)


__all__ = ["ContainerOperator", "docker_argv", "docker_problem"]
