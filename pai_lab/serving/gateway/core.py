"""The gateway's runtime as a whole: the services and entry routes of the state the control plane
pushes, the GPUs instances are pinned to, and the memory watchdog."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

from pai_lab.serving.gateway.errors import NotServed
from pai_lab.serving.gateway.metrics import Metrics
from pai_lab.serving.gateway.service_runtime import Route, ServiceRuntime, in_background

log = logging.getLogger("pai_lab.gateway")


def detect_gpus() -> list[str]:
    """The GPUs instances are pinned to, as CUDA_VISIBLE_DEVICES names them (an index, a
    ``GPU-<uuid>`` or a ``MIG-<uuid>``): PAI_LAB_GPUS (a comma list, "" for none) when set, else
    CUDA_VISIBLE_DEVICES, else what `nvidia-smi -L` lists; none on a CPU-only machine."""
    for var in ("PAI_LAB_GPUS", "CUDA_VISIBLE_DEVICES"):
        declared = os.environ.get(var)
        if declared is not None:
            # schedulers often hand out UUIDs: an instance is pinned with the very name it was given
            return [x.strip() for x in declared.split(",") if x.strip()]
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [str(i) for i in range(sum(1 for line in listing.stdout.splitlines() if line.startswith("GPU ")))]


class Gateway:
    def __init__(self, state_dir: Path, secret: str, metrics_token: str = ""):
        self.state_dir = state_dir
        self.metrics_token = metrics_token
        self.logs_dir = state_dir / "logs"
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        # Unix socket paths are limited to ~100 bytes: keep them short, whatever the state folder is
        import tempfile

        self.sockets_dir = Path(tempfile.mkdtemp(prefix="pai-gw-"))
        self.secret = secret
        self.services: dict[str, ServiceRuntime] = {}
        self.routes: dict[str, Route] = {}
        self.metrics = Metrics(self)
        self.watchdog: asyncio.Task | None = None
        self.gpus = detect_gpus()
        self.gpu_holders: dict[str, list[str]] = {}

    def free_gpu_ids(self) -> list[str]:
        held = {g for ids in self.gpu_holders.values() for g in ids}
        return [g for g in self.gpus if g not in held]

    def take_gpus(self, holder: str, count: int) -> list[str] | None:
        """``count`` free GPUs for ``holder`` (None: not enough free now)."""
        if count <= 0:
            return []
        free = self.free_gpu_ids()
        if len(free) < count:
            return None
        self.gpu_holders[holder] = free[:count]
        return free[:count]

    def free_gpus(self, holder: str) -> None:
        self.gpu_holders.pop(holder, None)

    def apply_state(self, state: dict) -> None:
        wanted = {s["name"]: s for s in state.get("services", [])}
        for name in list(self.services):
            if name not in wanted:
                svc = self.services.pop(name)
                in_background(svc.close(drain=True))  # a deleted service finishes what it holds
        for name, spec in wanted.items():
            svc = self.services.get(name) or self.services.setdefault(name, ServiceRuntime(self, name))
            svc.apply(spec)
        self.routes = {entry: Route(r.get("token"), r["targets"]) for entry, r in state.get("routes", {}).items()}

    def route(self, entry: str) -> Route:
        route = self.routes.get(entry)
        if route is None:
            raise NotServed(f"no service is served at {entry!r}; `pai eascmd ls` lists the services")
        return route

    def service(self, name: str) -> ServiceRuntime:
        svc = self.services.get(name)
        if svc is None:
            raise NotServed(f"service {name!r} is not deployed")
        return svc

    async def watch_memory(self) -> None:
        """Instances above metadata.memory are killed as OOMKilled and restarted, as in a container."""
        import psutil

        parent = os.getppid()
        while True:
            await asyncio.sleep(1.0)
            if os.getppid() != parent:  # the control plane is gone: do not linger
                os.kill(os.getpid(), signal.SIGTERM)
            for svc in list(self.services.values()):
                for inst in [*svc.instances, *svc.incoming]:
                    limit = inst.generation.get("memory")
                    if not limit or inst.proc is None or getattr(inst.proc, "remote", False):
                        continue  # a worker-hosted instance's memory is watched on its worker
                    if inst.host_pid is None or inst.proc.poll() is not None:
                        continue  # no process of its own runs now
                    try:
                        rss = psutil.Process(inst.host_pid).memory_info().rss
                    except psutil.Error:
                        continue
                    if rss > int(limit) * 1024 * 1024:
                        log.warning(
                            "instance %s uses %d MB > metadata.memory %s MB: killed", inst.name, rss >> 20, limit
                        )
                        inst.oom = True
                        inst.kill()

    async def close(self) -> None:
        await asyncio.gather(*(s.close() for s in self.services.values()), return_exceptions=True)
        if "pai_lab.serving.gateway.worker_instances" in sys.modules:
            from pai_lab.serving.gateway.worker_instances import close_clients

            await asyncio.get_running_loop().run_in_executor(None, close_clients)
        import shutil

        shutil.rmtree(self.sockets_dir, ignore_errors=True)
