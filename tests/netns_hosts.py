"""Hosts made of Linux network namespaces, for tests and benchmarks of a cluster on other machines.

A bridge in the root namespace (the test's own side, at ``.1``) and one namespace per host, joined to
it by a veth pair, each with an address of its own (``.2``, ``.3``...). Nothing is routed beyond the
bridge. Every process started on a host also runs in a mount namespace of its own in which the
system's temporary folder and the folders named in ``hide`` are empty tmpfs: a host sees neither the
control plane's state folder nor the test's files, so nothing can pass between hosts through a shared
folder. Names carry the creating process id, so parallel runs do not collide; :meth:`Hosts.close`
removes everything, and runs even when starting failed half-way.

    with Hosts(["a", "b", "c"], hide=[tmp_root]) as hosts:
        hosts.address("b")                      # "198.18.x.3"
        proc = hosts.start("b", ["dask", "worker", ...], log=path)
        hosts.kill("c")                         # every process of host c, SIGKILL
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCHEDULER_PORT = 8786  # each host has its own addresses: the usual port collides with nothing


def unavailable() -> str:
    """Why namespaces cannot be made here ("" when they can): the reason a test skips with."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add)"
    for tool in ("ip", "unshare"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install iproute2 util-linux)"
    probe = f"paiprobe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, check=False)
    if made.returncode != 0:
        return f"ip netns add failed: {made.stderr.strip()}"
    try:  # a host's own mount namespace with an empty temporary folder
        hide = f"mount -t tmpfs pai-probe {tempfile.gettempdir()}"
        argv = ["ip", "netns", "exec", probe, "unshare", "--mount", "--propagation", "private", "sh", "-c", hide]
        mounted = subprocess.run(argv, capture_output=True, text=True, check=False)
        if mounted.returncode != 0:
            return f"cannot make a mount namespace with a tmpfs: {mounted.stderr.strip()}"
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True, check=False)
    return ""


def _ip(*args: str, netns: str = "") -> None:
    argv = ["ip", "netns", "exec", netns, "ip", *args] if netns else ["ip", *args]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip()}")


class Hosts:
    def __init__(self, names: list[str], hide: list[Path] | tuple[Path, ...] = ()):
        pid = os.getpid()
        self.tag = f"p{pid}"
        self.subnet = _free_subnet(pid)
        self.bridge = f"{self.tag}br"
        self.names = list(names)
        self.hidden = _hidden([str(Path(p).resolve()) for p in hide])
        self.procs: list[subprocess.Popen] = []
        self.made: list[str] = []  # namespaces made so far
        self.bridge_made = False

    @property
    def private_dir(self) -> Path:
        """A folder that each host has to itself (an empty tmpfs in each), for a worker's local directory."""
        return Path(self.hidden[0]) if self.hidden else Path(tempfile.gettempdir())

    @property
    def gateway(self) -> str:
        """The root namespace's address on the hosts' network (where a server on the test's side listens)."""
        return f"{self.subnet}.1"

    def address(self, name: str) -> str:
        return f"{self.subnet}.{2 + self.names.index(name)}"

    def netns(self, name: str) -> str:
        return f"pai{self.tag}{name}"

    def __enter__(self) -> Hosts:
        try:
            self.open()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def open(self) -> None:
        _ip("link", "add", self.bridge, "type", "bridge")
        self.bridge_made = True
        _ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for name in self.names:
            ns, outside, inside = self.netns(name), f"{self.tag}{name}", f"{self.tag}{name}i"
            _ip("netns", "add", ns)
            self.made.append(ns)
            _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            _ip("link", "set", inside, "netns", ns)
            _ip("link", "set", inside, "name", "eth0", netns=ns)
            _ip("addr", "add", f"{self.address(name)}/24", "dev", "eth0", netns=ns)
            _ip("link", "set", "eth0", "up", netns=ns)
            _ip("link", "set", "lo", "up", netns=ns)
            _ip("link", "set", outside, "master", self.bridge, "up")

    def start(self, name: str, argv: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
        """Start ``argv`` on host ``name``, in a mount namespace where the temporary folder and ``hide`` are
        empty; its output goes to ``log`` (on the test's side)."""
        mounts = " && ".join(f"mount -t tmpfs -o mode=1777 pai-hidden {_quote(p)}" for p in self.hidden)
        script = f'{mounts} && exec "$@"'
        wrapped = ["ip", "netns", "exec", self.netns(name), "unshare", "--mount", "--propagation", "private"]
        wrapped += ["sh", "-c", script, "sh", *argv]
        if env is None:  # the hosts run this checkout's pai_lab, as if installed on them
            import pai_lab

            found = str(Path(pai_lab.__file__).resolve().parents[1])
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [found, os.environ.get("PYTHONPATH")]))}
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                wrapped, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True
            )
        self.procs.append(proc)
        return proc

    def pids(self, name: str) -> list[int]:
        done = subprocess.run(["ip", "netns", "pids", self.netns(name)], capture_output=True, text=True, check=False)
        return [int(p) for p in done.stdout.split()]

    def kill(self, name: str) -> list[int]:
        """SIGKILL every process of the host, as if its machine went down; returns their ids."""
        killed = []
        for _ in range(20):  # a dying nanny may still start a worker: until none is left
            pids = self.pids(name)
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
            time.sleep(0.1)
        for proc in self.procs:
            if proc.poll() is None and proc.args[3] == self.netns(name):  # type: ignore[index]
                proc.wait(10)
        return killed

    def close(self) -> None:
        for ns in self.made:
            name = ns.removeprefix(f"pai{self.tag}")
            with contextlib.suppress(Exception):
                self.kill(name)
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
        for ns in self.made:  # its veth end goes with it
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        self.made = []
        if self.bridge_made:
            subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, check=False)
            self.bridge_made = False


def start_worker(hosts: Hosts, name: str, scheduler: str, logs: Path, nthreads: int = 1) -> subprocess.Popen:
    """``dask worker`` (with its nanny) on host ``name``, listening on the host's own address."""
    argv = [_dask(), "worker", scheduler, "--host", hosts.address(name), "--name", f"host-{name}"]
    argv += ["--nthreads", str(nthreads), "--nworkers", "1", "--no-dashboard"]
    argv += ["--local-directory", str(hosts.private_dir / "dask-worker")]  # the host's own tmpfs
    return hosts.start(name, argv, logs / f"worker-{name}.log")


@contextlib.contextmanager
def dask_on_hosts(hosts: Hosts, logs: Path, scheduler: str = "a", workers=("b", "c"), nthreads: int = 1):
    """A Dask scheduler on host ``scheduler`` and a worker on each host of ``workers``; yields the scheduler's
    address once every worker has joined. Their logs go to ``logs`` on the test's side."""
    address = f"tcp://{hosts.address(scheduler)}:{SCHEDULER_PORT}"
    argv = [_dask(), "scheduler", "--host", hosts.address(scheduler), "--port", str(SCHEDULER_PORT)]
    try:
        hosts.start(scheduler, [*argv, "--no-dashboard"], logs / "scheduler.log")
        for name in workers:
            start_worker(hosts, name, address, logs, nthreads)
        wait_for_workers(address, len(workers))
        yield address
    finally:  # the hosts stay, free for another cluster
        for name in (*workers, scheduler):
            hosts.kill(name)


def wait_for_workers(address: str, count: int, timeout: float = 120) -> None:
    from distributed import Client

    deadline = time.monotonic() + timeout
    while True:  # the scheduler may not listen yet
        try:
            with Client(address, timeout="10s") as client:
                client.wait_for_workers(count, timeout=max(1.0, deadline - time.monotonic()))
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _dask() -> str:
    return str(Path(sys.executable).parent / "dask")


def _free_subnet(pid: int) -> str:
    """A /24 of 198.18.0.0/15 (set aside for network tests, RFC 2544) that this machine does not route yet,
    chosen from the process id so that parallel runs differ."""
    routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True, check=False).stdout
    for n in range(512):
        k = (pid + n) % 512
        subnet = f"198.{18 + k // 256}.{k % 256}"
        if f"{subnet}." not in routes:
            return subnet
    raise RuntimeError("no free /24 left in 198.18.0.0/15")


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _hidden(hide: list[str]) -> list[str]:
    """The folders a host sees empty: the system's temporary folder (unless this Python or pai_lab lies in
    it: a checkout under /tmp) and ``hide``; one inside a folder hidden already is hidden with it."""
    import pai_lab

    needed = [str(Path(p).resolve()) for p in (sys.prefix, sys.executable, Path(pai_lab.__file__).parents[1])]
    temp = str(Path(tempfile.gettempdir()).resolve())
    hidden: list[str] = []
    for path in ([] if any(_inside(n, temp) for n in needed) else [temp]) + hide:
        if not any(_inside(path, h) for h in hidden):
            hidden.append(path)
    return hidden


def _quote(path: str) -> str:
    import shlex

    return shlex.quote(path)
