"""The environments a DLC job's ranks can name as ``*_image``: what `dlc get images` lists.

PAI's images are container images in a registry. Here they are the Python environments on this
machine: the one pai_lab runs in, the virtual environments an operator lists in
``PAI_LAB_ENVIRONMENTS`` (folders or interpreters, separated by the path separator), conda's
environments, and Docker images when a Docker daemon answers. An empty image is the current Python.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from pai_lab.errors import BadInput

IMAGE_FLAGS = ("worker_image", "ps_image", "chief_image", "master_image")
COLUMNS = ["image_url", "image_url_vpc", "provider", "accelerator", "framework"]
HEADERS = ["ImageUrl", "ImageUrlVpc", "ImageProvider", "Accelerator", "Framework"]
FRAMEWORKS = {
    "tfjob": "tensorflow",
    "tensorflow": "tensorflow",
    "tf": "tensorflow",
    "pytorchjob": "pytorch",
    "pytorch": "pytorch",
    "torch": "pytorch",
}
PROBE_TIMEOUT = 5  # seconds for conda and docker to answer


def _accelerator() -> str:
    return "gpu" if shutil.which("nvidia-smi") else "cpu"


def _frameworks_here() -> str:
    found = [
        name
        for name, module in (("tensorflow", "tensorflow"), ("pytorch", "torch"))
        if importlib.util.find_spec(module) is not None
    ]
    return ",".join(found)


def _run(argv: list[str]) -> str | None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=PROBE_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def _interpreter(entry: str) -> Path | None:
    path = Path(entry).expanduser()
    for candidate in (path, path / "bin" / "python", path / "Scripts" / "python.exe"):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def local_images() -> list[dict]:
    """Every environment a rank could run in, the current Python first."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    accelerator = _accelerator()
    images = [
        {
            "image_url": f"local/python:{version}",
            "image_url_vpc": sys.executable,
            "provider": "Local",
            "accelerator": accelerator,
            "framework": _frameworks_here(),
            "python": sys.executable,
        }
    ]
    for entry in filter(None, os.environ.get("PAI_LAB_ENVIRONMENTS", "").split(os.pathsep)):
        python = _interpreter(entry)
        if python is not None:
            name = Path(entry).expanduser().name or str(python)
            images.append(
                {
                    "image_url": f"local/venv/{name}",
                    "image_url_vpc": str(python),
                    "provider": "Local",
                    "accelerator": accelerator,
                    "framework": "",
                    "python": str(python),
                }
            )
    conda = shutil.which("conda")
    listed = _run([conda, "env", "list", "--json"]) if conda else None
    if listed:
        try:
            envs = json.loads(listed).get("envs", [])
        except ValueError:
            envs = []
        for env in envs:
            python = _interpreter(env)
            if python is not None:
                images.append(
                    {
                        "image_url": f"local/conda/{Path(env).name}",
                        "image_url_vpc": str(python),
                        "provider": "Conda",
                        "accelerator": accelerator,
                        "framework": "",
                        "python": str(python),
                    }
                )
    docker = shutil.which("docker")
    tags = _run([docker, "images", "--format", "{{.Repository}}:{{.Tag}}"]) if docker else None
    for tag in (tags or "").splitlines():
        if tag and "<none>" not in tag:
            images.append(
                {
                    "image_url": tag,
                    "image_url_vpc": tag,
                    "provider": "Docker",
                    "accelerator": "",
                    "framework": "",
                    "python": "",
                }
            )
    return images


def filter_images(
    images: list[dict],
    framework: str | None = None,
    device: str | None = None,
    provider: str | None = None,
    order: str = "desc",
) -> list[dict]:
    """`dlc get images --framework --device --provider --order`; an empty filter matches all."""
    if framework:
        wanted = FRAMEWORKS.get(framework.lower())
        if wanted is None:
            raise BadInput(f"--framework {framework!r}: use TFJob, PyTorchJob, tensorflow or pytorch", "framework")
        images = [i for i in images if wanted in i["framework"].split(",")]
    if device:
        if device.lower() not in ("cpu", "gpu"):
            raise BadInput(f"--device {device!r}: use cpu or gpu", "device")
        images = [i for i in images if i["accelerator"] in ("", device.lower())]
    if provider:
        images = [i for i in images if i["provider"].lower() == provider.lower()]
    if order not in ("asc", "desc"):
        raise BadInput(f"--order {order!r}: use asc or desc", "order")
    return images if order == "desc" else list(reversed(images))


def check_images(values: dict, images: list[dict] | None = None) -> dict[str, dict[str, str]]:
    """Each ``*_image`` a job names must be an environment `dlc get images` lists: a Python (a listed
    virtual environment or a conda environment) or a Docker image (listed when a daemon answers). Returns
    what each role's ranks run with, by role: ``{"worker": {"python": "/opt/envs/tf/bin/python"}}`` or
    ``{"ps": {"image": "tf:2.15"}}``; a role left empty or naming the current Python is not in it and runs
    in the workers' own Python. A name no environment has is refused naming the flag."""
    named = {flag: values.get(flag) for flag in IMAGE_FLAGS if values.get(flag)}
    if not named:
        return {}
    known = images if images is not None else local_images()
    current = {known[0]["image_url"], known[0]["image_url_vpc"]}
    chosen: dict[str, dict[str, str]] = {}
    for flag, image in named.items():
        if image in current:
            continue
        match = next((i for i in known[1:] if image in (i["image_url"], i["image_url_vpc"])), None)
        if match is None:
            raise BadInput(
                f"--{flag} {image!r} is not an environment on the server; `pai dlc get images` lists "
                "them (leave it empty for the current Python)",
                flag,
            )
        role = flag.removesuffix("_image")
        chosen[role] = {"python": match["python"]} if match.get("python") else {"image": match["image_url"]}
    return chosen
