"""The Dask task that hosts a service instance on a worker of a resource group.

The gateway submits :func:`run_instance` with the service's Dask resource restrictions (``GPU``,
``MEMORY``). On the worker it binds a TCP socket on the worker's own host, starts ``python -m
pai_lab.serving.instance fd:N CONFIG`` on it (the connection token in the environment), tells the
gateway where it listens through a Dask variable, secedes from the worker's thread pool (an instance
holds its resources, not a thread) and waits for the instance to end: the gateway closing its
connection, the instance crashing, or the instance passing ``metadata.memory`` (killed as OOMKilled,
as in a container). The instance dies with the worker process that started it, so a lost worker
is a lost connection at the gateway, which starts a replacement elsewhere. When the server's rule
sandboxes member code (the plan comes with the launch, with the mode the server resolved: ``bubblewrap``,
also when ``auto`` chose it) the instance runs in bubblewrap as local instances do, or, with none on this
machine, fails with what to install (:func:`pai_lab.security.sandbox.bubblewrap_on_worker`); its
environment never holds cloud credentials.
A worker that does not see the version's files at the server's paths answers at once with the missing
keys; the gateway then sends them zipped with the next launch, and they are unpacked once per content here.

No gateway or control-plane import here: this runs on any machine with pai_lab installed."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

TOKEN_ENV = "PAI_LAB_INSTANCE_TOKEN"
PARENT_ENV = "PAI_LAB_INSTANCE_PARENT"
MEMORY_POLL_S = 0.5
PATH_KEYS = ("processor_dir", "model_dir", "model_file")  # where a version's resolved files are
_held_gpus: dict[str, list[str]] = {}  # instance name -> the GPU ids it holds on this worker
_gpu_lock = threading.Lock()


def channel_of(name: str, launch_id: str) -> str:
    """The Dask variable one launch reports its address in."""
    return f"pai-serving-{name}-{launch_id}"


def _take_gpus(name: str, wanted: int, declared: float) -> list[str]:
    """``wanted`` of this worker's GPUs (its ``GPU`` resource, numbered 0..n-1) that no other instance
    on it holds; Dask's resource accounting already made sure enough are free."""
    if wanted <= 0:
        return []
    with _gpu_lock:
        held = {g for ids in _held_gpus.values() for g in ids}
        free = [str(i) for i in range(int(declared)) if str(i) not in held]
        _held_gpus[name] = free[:wanted]
        return _held_gpus[name]


def missing_paths(config: dict) -> list[str]:
    """The keys of the instance's files (processor, model) that are not on this machine."""
    return [key for key in PATH_KEYS if config.get(key) and not os.path.exists(config[key])]


def _unpacked(files: dict[str, dict], config: dict, root: Path) -> dict:
    """``config`` with each shipped path replaced by its copy under ``root`` (unpacked once per content)."""
    config = dict(config)
    root.mkdir(parents=True, exist_ok=True)
    for key, shipped in files.items():
        data: bytes = shipped["zip"]
        target = root / hashlib.sha1(data).hexdigest()[:20]
        if not target.exists():
            tmp = Path(tempfile.mkdtemp(dir=root, prefix=".unpack-"))
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                for member in archive.infolist():
                    inside = (tmp / member.filename).resolve()
                    if tmp.resolve() not in inside.parents:  # an entry that would land outside: skipped
                        continue
                    archive.extract(member, tmp)
            try:
                tmp.rename(target)
            except OSError:  # another instance of the same files unpacked them first
                shutil.rmtree(tmp, ignore_errors=True)
        config[key] = str(target / shipped["name"]) if shipped["is_file"] else str(target)
    return config


def _environment(launch: dict, gpus: list[str], token: str, sandboxed: bool) -> dict[str, str]:
    # the rule for all member code: never the server's credentials, nor the SDKs' default files
    from pai_lab.security.sandbox import scrub, without_cloud_credentials

    env = without_cloud_credentials(scrub(dict(os.environ)))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if gpus or launch.get("gpu") is not None:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)  # an instance that asked for none sees none
    cpu = launch.get("cpu")
    if cpu:
        threads = str(max(1, int(float(cpu) + 0.999)))
        env.update(TF_NUM_INTRAOP_THREADS=threads, OMP_NUM_THREADS=threads)
    env[TOKEN_ENV] = token
    if not sandboxed:  # in the sandbox its parent is bubblewrap's, which ends with this worker
        env[PARENT_ENV] = str(os.getpid())
    return env


def _command(launch: dict, argv: list[str], config: dict) -> list[str]:
    """``argv`` wrapped in bubblewrap when the launch's sandbox plan asks for it and this machine has it."""
    plan = launch.get("sandbox")
    if not plan:
        return argv
    from pai_lab.security.sandbox import bubblewrap_on_worker
    from pai_lab.serving.sandbox import instance_argv

    binary = bubblewrap_on_worker(plan)  # RuntimeError: the mode is bubblewrap and none works here
    return instance_argv({**plan, "bwrap": binary}, argv, config, None) if binary else argv


def _own_pid(proc: subprocess.Popen, sandboxed: bool) -> int:
    """The instance's own process: ``proc``, or in the sandbox the one bubblewrap starts (waited for)."""
    if not sandboxed:
        return proc.pid
    from pai_lab.serving.sandbox import instance_pid

    deadline = time.monotonic() + 30
    while proc.poll() is None and time.monotonic() < deadline:
        pid = instance_pid(proc)
        if pid != proc.pid:
            return pid
        time.sleep(0.02)
    return proc.pid


def _wait(proc: subprocess.Popen, pid: int, memory_mb: int | None) -> tuple[int, bool]:
    """The instance's exit code (as containers report it: -9 is 137) and whether it was OOMKilled."""
    import psutil

    oom = False
    while proc.poll() is None:
        time.sleep(MEMORY_POLL_S)
        if not memory_mb:
            continue
        try:
            rss = psutil.Process(pid).memory_info().rss
        except psutil.Error:
            continue
        if rss > memory_mb * 1024 * 1024:
            oom = True
            proc.send_signal(signal.SIGKILL)
    code = proc.wait()
    return (128 - code if code < 0 else code), oom


def run_instance(launch: dict) -> dict:
    """Host one instance on this worker until it ends; returns ``{"code", "oom", "worker"}``, or at once
    with ``"missing"``: the keys of its files this machine does not have (the gateway then ships them)."""
    from distributed import Variable, get_worker, secede
    from distributed.comm import get_address_host

    worker = get_worker()
    logs = Path(worker.local_directory) / "pai-serving"
    files = launch.get("files") or {}
    missing = missing_paths(launch["config"])
    if set(missing) - set(files):  # not on this machine: the gateway sends them with the next launch
        return {"code": None, "oom": False, "worker": worker.address, "missing": missing}
    config = {
        **_unpacked({k: files[k] for k in missing}, launch["config"], logs / "files"),
        "workers": launch["workers"],
    }
    argv = [sys.executable, "-m", "pai_lab.serving.instance", "fd:{fd}", json.dumps(config)]
    try:
        command = _command(launch, argv, config)
    except RuntimeError as exc:
        return {"code": None, "oom": False, "worker": worker.address, "failed": str(exc)}
    sandboxed = command is not argv
    host = get_address_host(worker.address)
    listener = socket.create_server((host, 0), family=socket.AF_INET6 if ":" in host else socket.AF_INET, backlog=8)
    port = listener.getsockname()[1]
    name = launch["name"]
    gpus = _take_gpus(name, int(launch.get("gpu") or 0), worker.state.total_resources.get("GPU", 0))
    logs.mkdir(parents=True, exist_ok=True)
    try:
        with open(logs / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(
                [f"fd:{listener.fileno()}" if part == "fd:{fd}" else part for part in command],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=_environment(launch, gpus, launch["token"], sandboxed),
                pass_fds=(listener.fileno(),),
            )
        listener.close()  # the instance holds it now
        pid = _own_pid(proc, sandboxed)
        address = {"host": host, "port": port, "pid": pid, "worker": worker.address, "gpus": gpus}
        Variable(launch["channel"]).set(address)
        secede()  # resources stay held until the instance ends; the thread goes back to the pool
        code, oom = _wait(proc, pid, launch.get("memory"))
    finally:
        listener.close()
        with _gpu_lock:
            _held_gpus.pop(name, None)
    return {"code": code, "oom": oom, "worker": worker.address}
