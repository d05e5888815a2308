"""The rank runtime: one Dask task per rank, running the job's command as a subprocess.

A rank task binds a free port on its worker (:mod:`pai_lab.training.rank_ports`), reports it, waits
until every rank of the job has done the same (gang start), then starts the command with ``TF_CONFIG`` and
the PAI-TF flags.
Its output and metrics go back to the control plane through a Dask queue, so a worker on
another machine needs no shared file system. The process is ended when the control plane sets
the job's stop event, when the Dask worker dies (parent-death signal), or when the task ends.
"""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

from pai_lab.training import containers, isolation, job_storage, rank_ports
from pai_lab.training.rank_process import (
    _die_with_parent,
    _end_leftovers,
    _end_process_tree,
    _with_parent_death,
)

MAX_LINE = 10_000
FLUSH_SECONDS = 0.2
STOP_WAIT_SECONDS = 5.0
REJOIN_SEQ_STEP = 10_000_000
_SHELL_CHARS = re.compile(r"[;&|<>$`()\n*?~{}\[\]]")
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
# TensorFlow's C++ start-up lines, written before its log level is read (so TF_CPP_MIN_LOG_LEVEL cannot
# hide them): info lines, absl's preamble, and the CUDA probes of a build with GPU support on a machine
# without one. Kept when the job asks for them (TF_CPP_MIN_LOG_LEVEL=0 or 1).
_TF_STARTUP_NOISE = re.compile(
    r"^(I\d{4} \d\d:\d\d:[\d.]+ +\d+ \S+\.cc:\d+\] "
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags"
    r"|E\d{4} \d\d:\d\d:[\d.]+ +\d+ \S+\.cc:\d+\] (failed call to cuInit|Unable to register cu))"
)


def names(job_id: str) -> dict[str, str]:
    """The Dask objects one job talks through."""
    return {
        "events": f"pai-{job_id}-events",
        "cluster": f"pai-{job_id}-cluster",
        "stop": f"pai-{job_id}-stop",
        "go": f"pai-{job_id}-go",
    }


def split_command(command: str) -> tuple[dict[str, str], list[str] | None]:
    """Leading VAR=value assignments, and the argv when no shell is needed (None: run via sh)."""
    if _SHELL_CHARS.search(command):
        return {}, None
    try:
        tokens = shlex.split(command)
    except ValueError:
        return {}, None
    env = {}
    while tokens and _ASSIGNMENT.match(tokens[0]):
        key, _, value = tokens.pop(0).partition("=")
        env[key] = value
    return env, tokens or None


def resolve_mounts(command: str, mounts: dict[str, str]) -> str:
    """Replace the manual's mount paths (/root/code/, /root/data/...) with real locations."""
    for mount in sorted(mounts, key=len, reverse=True):
        target = mounts[mount].rstrip("/")
        command = re.sub(re.escape(mount.rstrip("/")) + r"(?=/|\s|$|['\"])", _literal(target), command)
    return command


def _literal(text: str) -> Callable[[re.Match], str]:
    """A replacement for re.sub that is ``text`` as it is (a path may hold backslashes)."""
    return lambda _match: text


def _inherited_environment() -> dict:
    """The worker's environment without the thread caps a Dask nanny gives its worker process
    (OMP_NUM_THREADS=1 and the like): a rank is a training process of its own and should use the
    threads a process started by hand would."""
    env = isolation.scrub(dict(os.environ))  # never the server's own credentials
    try:
        import dask

        capped = dask.config.get("distributed.nanny.pre-spawn-environ", {}) or {}
    except Exception:  # noqa: BLE001 - an old Dask without that setting
        capped = {}
    for key, value in capped.items():
        if key.endswith("_NUM_THREADS") and env.get(key) == str(value):
            env.pop(key)
    return env


def rank_environment(launch: dict, role: str, index: int, cluster: dict, gpus: list[int] | None) -> dict:
    """Environment of one rank: TF_CONFIG (or torch's variables), pai_lab's, the GPU pin."""
    tf_cluster = {r: hosts for r, hosts in cluster.items() if hosts}
    is_chief = (role == "chief") or (
        role in ("worker", "master")
        and index == 0
        and "chief" not in tf_cluster
        and (role == "master" or "master" not in tf_cluster)
    )
    env = {
        "PYTHONUNBUFFERED": "1",
        "PAI_LAB_JOB_ID": launch["job_id"],
        "PAI_LAB_POD": f"{launch['job_id']}-{role}-{index}",
        "PAI_LAB_ROLE": role,
        "PAI_LAB_TASK_INDEX": str(index),
        "PAI_LAB_IS_CHIEF": "1" if is_chief else "0",
        "PAI_LAB_NUM_WORKERS": str(sum(len(tf_cluster.get(r, [])) for r in ("chief", "master", "worker"))),
        "PAI_LAB_OUTPUT_DIR": launch["output_dir"],
        "PAI_LAB_MODEL_DIR": launch["model_dir"],
        "PAI_LAB_CHECKPOINT_DIR": launch["checkpoint_dir"],
    }
    if launch["kind"] == "pytorchjob":
        order = [h for r in ("master", "worker") for h in tf_cluster.get(r, [])]
        me = tf_cluster[role][index]
        host, port = order[0].rsplit(":", 1)
        env.update(
            MASTER_ADDR=host, MASTER_PORT=port, WORLD_SIZE=str(len(order)), RANK=str(order.index(me)), LOCAL_RANK="0"
        )
    else:
        env["TF_CONFIG"] = json.dumps({"cluster": tf_cluster, "task": {"type": role, "index": index}})
    if gpus is not None:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in gpus)
    return env


def pai_flags(launch: dict, role: str, index: int, cluster: dict) -> list[str]:
    """The PAI-TF script flags, then the job's hyperparameters and user-defined parameters."""
    flags = []
    if launch["kind"] in ("tfjob", "predictjob"):
        flags += [
            f"--job_name={role}",
            f"--task_index={index}",
            f"--ps_hosts={','.join(cluster.get('ps', []))}",
            f"--worker_hosts={','.join(cluster.get('worker', []))}",
            f"--checkpointDir={launch['checkpoint_dir']}",
            f"--buckets={','.join(launch.get('buckets', []))}",
        ]
        flags += launch.get("table_flags", [])  # --tables= / --outputs=, resolved at submit
    flags += launch.get("hyperparameters", [])
    return flags


class _Events:
    """Buffers a rank's log lines and metric points; sends them in batches on the job's queue."""

    def __init__(self, queue, pod: str, seq: int = 0):
        self.queue = queue
        self.pod = pod
        self.lock = threading.Lock()
        self.lines: list[tuple[int, float, str, str]] = []
        self.metrics: list[tuple[int, float, dict]] = []
        self.seq = seq  # a rank that rejoins numbers its lines after its earlier runs'

    def line(self, text: str, stream: str = "stdout") -> None:
        text = text.rstrip("\n").rsplit("\r", 1)[-1][:MAX_LINE]
        with self.lock:
            self.seq += 1
            self.lines.append((self.seq, time.time(), text, stream))

    def metric(self, step: int, values: dict, at: float) -> None:
        with self.lock:
            self.metrics.append((step, at, values))

    def flush(self) -> None:
        with self.lock:
            lines, self.lines = self.lines, []
            metrics, self.metrics = self.metrics, []
        if lines:
            self.queue.put(("log", self.pod, lines))
        if metrics:
            self.queue.put(("metric", self.pod, metrics))


def _pump_output(
    stream, events: _Events, tail: list[str], quiet_tf: bool = False, name: str = "stdout", metric_lines: bool = False
) -> None:
    """One of the process's streams, line by line, kept as ``name`` (stdout or stderr, apart as PAI shows them);
    with ``metric_lines`` (a container, where no metrics pipe reaches) its ``[metrics]`` lines are metrics too."""
    for raw in iter(stream.readline, b""):
        text = raw.decode("utf-8", "replace")
        if quiet_tf and _TF_STARTUP_NOISE.match(text):
            continue
        point = containers.metric_from_line(text) if metric_lines else None
        if point is not None:
            events.metric(point[0], point[1], time.time())
        events.line(text, name)
        tail.append(text.rstrip("\n")[-500:])
        del tail[:-30]
    stream.close()


def _pump_metrics(fd: int, events: _Events) -> None:
    with os.fdopen(fd, "rb") as stream:
        for raw in iter(stream.readline, b""):
            try:
                point = json.loads(raw)
                values = {k: float(v) for k, v in point.get("metrics", {}).items()}
                events.metric(int(point.get("step", 0)), values, float(point.get("time", time.time())))
            except (ValueError, TypeError, AttributeError):
                events.line("[pai_lab] ignored a malformed metrics record")


def _reap(proc: subprocess.Popen, ended: threading.Event) -> None:
    try:
        proc.wait()
    finally:
        ended.set()


def _watch_stop(stop, ended: threading.Event, seen: threading.Event, failed: list) -> None:
    """Waits on the job's stop event while the rank's command runs; sets ``seen`` and ``ended`` when it is
    set. The scheduler answers the wait the moment the event is set, so a stop reaches the rank at once, for
    one round trip every STOP_WAIT_SECONDS instead of a look twice a second."""
    try:
        while not ended.is_set():
            if stop.wait(STOP_WAIT_SECONDS):
                seen.set()
                break
    except Exception as exc:  # noqa: BLE001 - raised in the rank's task, which then ends the command
        failed.append(exc)
    ended.set()


def _code_dir(launch: dict, pod: str, worker_dir: str) -> str | None:
    """The job's code as seen on this worker: the control plane's copy, or unpacked from the zip."""
    code_dir = launch.get("code_dir")
    if not code_dir:
        return None
    if Path(code_dir).is_dir():
        return code_dir
    target = Path(worker_dir) / "pai_jobs" / launch["job_id"] / pod / "code"
    target.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(io.BytesIO(launch["code_zip"])) as archive:
        archive.extractall(target)
    return str(target)


def _data_file(launch: dict, pod: str, worker_dir: str, key: str = "data_file") -> str | None:
    """The job's data sources file (or its tables file, ``key="tables_file"``) as seen on this worker: the
    control plane's, or written from the copy the launch carries (a worker on another machine)."""
    path = launch.get(key)
    if not path or Path(path).is_file() or not launch.get("data_files"):
        return path or None
    target = Path(worker_dir) / "pai_jobs" / launch["job_id"] / pod / "data"
    target.mkdir(parents=True, exist_ok=True)
    for name, text in launch["data_files"].items():
        (target / Path(name).name).write_text(text, encoding="utf-8")
    return str(target / Path(path).name)


def run_rank(launch: dict, role: str, index: int, gpus: list[int] | None) -> int:
    """The Dask task of one rank. Returns the command's exit code (None-like -1 if never started)."""
    from distributed import Event, Queue, Variable, get_worker

    worker = get_worker()
    job_id = launch["job_id"]
    pod = f"{job_id}-{role}-{index}"
    channel = names(job_id)
    queue, stop = Queue(channel["events"]), Event(channel["stop"])
    rejoin = launch.get("rejoin") or {}  # enableDynamicCluster: this rank left the job and comes back
    events = _Events(queue, pod, seq=int(rejoin.get("attempt", 0)) * REJOIN_SEQ_STEP)
    scheme, _, rest = worker.address.partition("://")
    host = "127.0.0.1" if scheme == "inproc" else rest.rsplit(":", 1)[0].strip("[]")
    try:
        sock = rank_ports.again(int(rejoin["port"])) if rejoin.get("port") else rank_ports.fresh()
    except rank_ports.PortTaken as exc:
        events.line(str(exc))
        events.flush()
        queue.put(("exit", pod, 1, False, [str(exc)]))
        return 1
    port = sock.getsockname()[1]
    queue.put(("ready", pod, host, port, worker.address))

    # A timed-out Event.wait is a plain False; a Variable.get or Queue.get that times out is an error the
    # scheduler logs with its traceback, dozens per job on the terminal.
    go = Event(channel["go"])
    while not go.wait(0.5):
        if stop.is_set():
            sock.close()
            queue.put(("exit", pod, None, True, []))
            return -1
    cluster = Variable(channel["cluster"]).get()
    sock.close()  # the port is the rank's to bind now

    env = _inherited_environment()
    python = launch.get("pythons", {}).get(role) or sys.executable  # the role's *_image, else this Python
    env["PATH"] = os.path.dirname(python) + os.pathsep + env.get("PATH", "")
    if python != sys.executable:
        env["VIRTUAL_ENV"] = str(Path(python).parent.parent)
    env.update(rank_environment(launch, role, index, cluster, gpus))
    job_storage.apply(env, launch)  # S3: the workspace's options, never the server's credentials
    if launch.get("job_token"):
        env["PAI_LAB_TOKEN"] = launch["job_token"]
        if launch.get("server_url"):
            env["PAI_LAB_URL"] = launch["server_url"]
    data_file = _data_file(launch, pod, worker.local_directory)
    if data_file:
        env["PAI_LAB_DATA_SOURCES"] = data_file
    tables_file = _data_file(launch, pod, worker.local_directory, "tables_file")
    if tables_file:
        env["PAI_LAB_TABLES_FILE"] = tables_file
    mounts = dict(launch.get("mounts", {}))
    code_dir = _code_dir(launch, pod, worker.local_directory)
    if code_dir:
        mounts[launch.get("code_mount") or "/root/code"] = code_dir
    command = resolve_mounts(launch["command"], mounts)
    flags = pai_flags(launch, role, index, cluster) + launch.get("user_flags", [])
    cwd = code_dir or launch["work_dir"]
    if not Path(cwd).is_dir():
        cwd = worker.local_directory
    sandbox = launch.get("sandbox")
    if sandbox:
        env["HOME"] = "/tmp"  # the sandbox's own; the server's home is not in it
    tables_dir = tables_file and str(Path(tables_file).parent)
    seen = [p for p in (code_dir, data_file and str(Path(data_file).parent), tables_dir, cwd) if p]
    if python != sys.executable:  # the chosen environment is read-only in the sandbox too
        seen.append(str(Path(python).parent.parent))
    if launch.get("thirdparty_libs"):
        site = Path(worker.local_directory) / "pai_jobs" / job_id / pod / "site-packages"
        site.mkdir(parents=True, exist_ok=True)
        pip_argv = [
            python,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--target",
            str(site),
            *launch["thirdparty_libs"],
        ]
        if sandbox:  # a package's build runs code of the member's choosing: in the sandbox too
            pip_argv = isolation.sandboxed_argv(
                {**sandbox, "writable": [*sandbox["writable"], str(site)]}, pip_argv, cwd, seen
            )
        pip = subprocess.run(pip_argv, capture_output=True, text=True, check=False, env=env, stdin=subprocess.DEVNULL)
        for text in (pip.stdout + pip.stderr).splitlines():
            events.line(f"[pip] {text}")
        if pip.returncode != 0:
            events.flush()
            queue.put(("exit", pod, pip.returncode, False, ["pip install of thirdparty_libs failed"]))
            return pip.returncode
        env["PYTHONPATH"] = str(site) + os.pathsep + env.get("PYTHONPATH", "")
        seen.append(str(site))

    metrics_read, metrics_write = os.pipe()
    env["PAI_LAB_METRICS_FD"] = str(metrics_write)
    from distributed import get_client

    from pai_lab.pai_tf import broker  # the rank's WorkQueue calls, answered through this worker

    queue_fds, queue_fds_passed = broker.serve(get_client(), job_id, env)
    assignments, argv = split_command(command)
    env.update(assignments)
    quiet_tf = env.get("TF_CPP_MIN_LOG_LEVEL") not in ("0", "1")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    argv = ["/bin/sh", "-c", command + (" " + shlex.join(flags) if flags else "")] if argv is None else argv + flags
    if python != sys.executable and re.fullmatch(r"python[0-9.]*", argv[0]):
        argv[0] = python  # `python ...` is the chosen environment's, whatever PATH the sandbox resolves
    image = launch.get("containers", {}).get(role)  # a Docker *_image: the container is the rank's sandbox
    if image:
        argv = containers.rank_argv(image, pod, argv, cwd, env, launch["container_view"], list(assignments))
    elif sandbox:
        argv = isolation.sandboxed_argv(sandbox, argv, cwd, seen)
    wrapped = _with_parent_death(argv, env.get("PATH"), cwd)
    try:
        proc = subprocess.Popen(
            wrapped or argv,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            pass_fds=(metrics_write, *queue_fds),
            preexec_fn=None if wrapped else _die_with_parent,  # noqa: PLW1509
        )
    except OSError as exc:
        os.close(metrics_read)
        os.close(metrics_write)
        queue_fds_passed()
        message = f"cannot start {argv[0]!r} on worker {worker.address}: {exc.strerror}"
        events.line(message)
        events.flush()
        queue.put(("exit", pod, 127, False, [message]))
        return 127
    os.close(metrics_write)
    queue_fds_passed()
    queue.put(("started", pod, proc.pid))
    tail: list[str] = []
    readers = [
        threading.Thread(
            target=_pump_output, args=(proc.stdout, events, tail, quiet_tf, "stdout", bool(image)), daemon=True
        ),
        threading.Thread(target=_pump_output, args=(proc.stderr, events, tail, quiet_tf, "stderr"), daemon=True),
        threading.Thread(target=_pump_metrics, args=(metrics_read, events), daemon=True),
    ]
    for reader in readers:
        reader.start()
    # Woken the moment the command ends (a thread blocked in its wait) or the job's stop event is set
    # (a thread blocked on the scheduler's answer), and every FLUSH_SECONDS to send what the rank wrote.
    ended, stop_seen = threading.Event(), threading.Event()
    failed: list[BaseException] = []
    threading.Thread(target=_reap, args=(proc, ended), daemon=True).start()
    threading.Thread(target=_watch_stop, args=(stop, ended, stop_seen, failed), daemon=True).start()
    stopped = False
    try:
        while not ended.wait(FLUSH_SECONDS):
            events.flush()
        if failed:  # the scheduler went away: the rank ends with the task, as when it could not be asked
            raise failed[0]
        stopped = stop_seen.is_set() and proc.returncode is None
    finally:
        if proc.poll() is None:
            _end_process_tree(proc)
        _end_leftovers(proc, pod)
        if image:
            containers.remove(pod)
        for reader in readers:
            reader.join(5)
        events.flush()
    code = proc.returncode
    queue.put(("exit", pod, code, stopped, tail[-20:]))
    return code
