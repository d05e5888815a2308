"""Warm step runners: one process per run (and sandbox) that runs FunctionOperator and built-in steps
one after another, so a step costs a message instead of an interpreter start.

The worker side (:func:`run_in_runner`) keeps idle runners per key (the run, and the sandbox the run's
steps share) and hands each step to one of them: the step's work folder is laid out as for a process
of its own, the runner changes into it, takes the step's environment, points its stdout/stderr at the
step's ``logs.txt``, loads the pickle there (never in the control plane) and answers with an exit code.
A runner runs one step at a time; a fan-out gets as many runners as steps run at once. Runners end when
their run ends (:func:`close_runners`), when a step of theirs is terminated, or after idling.

A runner's start (an interpreter and pai_lab's imports, a few hundred milliseconds on a busy machine) is
kept off a run's path where it can be: a worker keeps ``SPARE_RUNNERS`` spare runners, started ahead with
the step modules imported and nothing of any run in them, and hands one to a run that needs a runner; it
then belongs to that run alone, and spares are started again when a run ends (not while the run that
took them runs, where they would compete with its steps for the cores). A sandboxed run (a server
with members) never takes a spare: its runners start inside its own sandbox.

The runner side is this module run as a program: requests come as JSON lines on stdin, answers go out on
the stdout it started with (the step's output goes to its log, never into the answers).
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

IDLE_SECONDS = 60.0  # a runner with nothing to do ends; the pool drops one before that
SPARE_IDLE_SECONDS = 600.0  # a spare waits longer for a run
SPARE_RUNNERS = 2
_POOL_MARGIN = 10.0
_LOCK = threading.Lock()
_IDLE: dict[tuple[str, str], list[_Runner]] = {}
_SPARES: list[_Runner] = []
_WANTED = False  # whether an unsandboxed run ever asked this worker for a spare
_REFILLING = threading.Event()
_BUSY: dict[int, tuple[str, _Runner]] = {}
# Runners are started from one long-lived thread: PR_SET_PDEATHSIG fires when the starting *thread*
# ends, and a Dask worker's threads come and go.
_SPAWNER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pai-step-runner-spawner")


class _Runner:
    def __init__(self, proc: subprocess.Popen, idle: float = IDLE_SECONDS):
        self.proc = proc
        self.idle = idle
        self.last_used = time.monotonic()

    def usable(self) -> bool:
        return self.proc.poll() is None and time.monotonic() - self.last_used < self.idle - _POOL_MARGIN

    def end(self) -> None:
        from pai_lab.training.runtime import _end_process_tree

        if self.proc.poll() is None:
            _end_process_tree(self.proc)
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()  # type: ignore[union-attr]
            except OSError:
                pass


def runner_sandbox(sandbox: dict | None, run_dir: str) -> dict | None:
    """A step's sandbox widened to its run: the run's folder writable (every step folder of it), the
    inputs shown that lie outside it. Steps of one run with the same outside inputs share a runner."""
    if not sandbox:
        return None
    inside = Path(run_dir)
    shown = [p for p in sandbox["shown_again"] if not Path(p).is_relative_to(inside)]
    return {**sandbox, "shown_again": sorted(set(shown)), "writable": [run_dir]}


def _spawn(argv: list[str], cwd: str, env: dict) -> subprocess.Popen:
    """Start a runner process; called on the spawner thread only."""
    from pai_lab.training.rank_process import _die_with_parent

    return subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=_die_with_parent,  # noqa: PLW1509
    )


def _runner_env() -> dict:
    from pai_lab.training import job_storage
    from pai_lab.training.isolation import scrub

    env = scrub(dict(os.environ))  # never the server's own credentials, nor its AWS_* ones
    job_storage.apply(env, {"embedded_cluster": True})
    return {**env, "PYTHONUNBUFFERED": "1"}


def _start(plan: dict, run_dir: str, sandbox: dict | None) -> _Runner:
    # the run's variables from the start: a runner is found (and ended) by them like a step's process
    env = {
        **_runner_env(),
        "PAI_RUN_ID": plan["run_id"],
        "PAI_WORKSPACE_ID": plan["workspace_id"],
        "PAI_USER_ID": plan["user"],
    }
    argv = [sys.executable, "-m", "pai_lab.pipelines.runner"]
    if sandbox:
        from pai_lab.training.isolation import sandboxed_argv

        argv = sandboxed_argv(sandbox, argv, run_dir, [])
    return _Runner(_SPAWNER.submit(_spawn, argv, run_dir, env).result())


def _refill_spares() -> None:
    """Start spare runners up to SPARE_RUNNERS (on the spawner thread, so they die with this process)."""
    try:
        while True:
            with _LOCK:
                _SPARES[:] = [r for r in _SPARES if r.usable()]
                if len(_SPARES) >= SPARE_RUNNERS:
                    return
            argv = [sys.executable, "-m", "pai_lab.pipelines.runner", "--idle", str(SPARE_IDLE_SECONDS)]
            try:
                runner = _Runner(_spawn(argv, "/", _runner_env()), idle=SPARE_IDLE_SECONDS)
            except OSError:
                return  # no spare: a run starts its own runners as before
            with _LOCK:
                _SPARES.append(runner)
    finally:
        with _LOCK:
            _REFILLING.clear()


def _refill_soon() -> None:
    with _LOCK:
        if _REFILLING.is_set():
            return
        _REFILLING.set()
    _SPAWNER.submit(_refill_spares)


def _take_spare() -> _Runner | None:
    """A spare runner for an unsandboxed run (None when none is ready). Spares are started again when a
    run ends (:func:`close_runners`), not while the run that took them runs; only when none was ready
    are they started at once, for the runs after this one."""
    global _WANTED
    runner = None
    with _LOCK:
        _WANTED = True
        while _SPARES and runner is None:
            candidate = _SPARES.pop()
            if candidate.usable():
                runner = candidate
            else:
                candidate.end()
    if runner is None:
        _refill_soon()
    else:
        runner.idle = IDLE_SECONDS  # from now on a runner of its run, idling out as they do
        runner.last_used = time.monotonic()
    return runner


def _acquire(key: tuple[str, str], plan: dict, run_dir: str, sandbox: dict | None) -> _Runner:
    with _LOCK:
        idle = _IDLE.get(key, [])
        while idle:
            runner = idle.pop()
            if runner.usable():
                return runner
            runner.end()
    spare = None if sandbox else _take_spare()
    return spare or _start(plan, run_dir, sandbox)


def _release(key: tuple[str, str], runner: _Runner) -> None:
    runner.last_used = time.monotonic()
    with _LOCK:
        _IDLE.setdefault(key, []).append(runner)


def close_runners(run_id: str) -> int:
    """End the runners of a run (its driver calls this on every worker when the run ends)."""
    with _LOCK:
        ending = [r for key in [k for k in _IDLE if k[0] == run_id] for r in _IDLE.pop(key)]
        ending += [r for rid, r in _BUSY.values() if rid == run_id]
    for runner in ending:
        runner.end()
    if _WANTED:  # this worker hands out spares: the ones this run took are replaced now
        _refill_soon()
    return len(ending)


async def close_runners_soon(run_id: str) -> None:
    """:func:`close_runners` for ``client.run(..., wait=False)``, which takes only coroutines: the
    worker's event loop hands the (blocking) ending to a thread."""
    import asyncio

    await asyncio.to_thread(close_runners, run_id)


def _key(plan: dict) -> tuple[tuple[str, str], str, dict | None]:
    run_dir = str(Path(plan["work_dir"]).parent)
    sandbox = runner_sandbox(plan.get("sandbox"), run_dir)
    return (plan["run_id"], json.dumps(sandbox, sort_keys=True)), run_dir, sandbox


def run_in_runner(plan: dict, stop: Path) -> dict | int | str:
    """Run one FunctionOperator or built-in step in a warm runner of its run, which lays out its work
    folder too (off the worker's thread): the step's result, the runner's exit code when the step ended
    the runner itself, or "terminated" when the stop file appeared while it ran."""
    return run_batch([plan], stop)[0]


def run_batch(plans: list[dict], stop: Path) -> list[dict | int | str]:
    """:func:`run_in_runner` for several steps of a run: the steps that share a runner go to it in one
    request, and it answers a line a step as each ends, so it never waits on this side between steps."""
    answers: list[dict | int | str] = []
    while len(answers) < len(plans):
        key, run_dir, sandbox = _key(plans[len(answers)])
        group = [plans[len(answers)]]
        while len(answers) + len(group) < len(plans) and _key(plans[len(answers) + len(group)])[0] == key:
            group.append(plans[len(answers) + len(group)])
        answers += _exchange(key, group, run_dir, sandbox, stop)
    return answers


def _exchange(
    key: tuple[str, str], plans: list[dict], run_dir: str, sandbox: dict | None, stop: Path
) -> list[dict | int | str]:
    if stop.exists():
        return ["terminated"] * len(plans)
    runner = _acquire(key, plans[0], run_dir, sandbox)
    with _LOCK:
        _BUSY[id(runner)] = (plans[0]["run_id"], runner)
    got: list[dict | int | str] = []
    try:
        try:
            runner.proc.stdin.write((json.dumps({"plans": plans}) + "\n").encode())  # type: ignore[union-attr]
            runner.proc.stdin.flush()  # type: ignore[union-attr]
        except OSError:
            runner.end()
            return [-1] * len(plans)
        fd = runner.proc.stdout.fileno()  # type: ignore[union-attr]
        pending = b""
        while len(got) < len(plans):
            if b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                got.append(json.loads(line)["result"])
                continue
            ready, _, _ = select.select([fd], [], [], 0.05)
            if not ready:
                if stop.exists():
                    runner.end()
                    return got + ["terminated"] * (len(plans) - len(got))
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:  # the step ended the runner itself (os._exit, a crash): its code is the step's
                runner.end()
                code = runner.proc.returncode
                got.append(code if code else -1)
                rest = plans[len(got) :]
                return got + (_exchange(key, rest, run_dir, sandbox, stop) if rest else [])
            pending += chunk
        _release(key, runner)
        return got
    finally:
        with _LOCK:
            _BUSY.pop(id(runner), None)


# ---------------------------------------------------------------- the runner process


_BASE_ENV: dict[str, str] = {}  # the runner's own environment, each step's starting point
_QUIET: list[int] = []  # /dev/null, opened once: where the runner's stdout and stderr point between steps


def open_progress(path: str | None) -> int | None:
    """The batch's progress file, for appending (never through a link a step made); None: none."""
    if not path:
        return None
    try:
        return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
    except OSError:  # the driver reads the batch's results when it ends instead
        return None


def _note(progress: int | None, line: dict) -> None:
    if progress is None:
        return
    try:
        os.write(progress, (json.dumps(line) + "\n").encode())  # one write: a whole line or nothing
    except OSError:
        pass


def _one(plan: dict, progress: int | None = None) -> dict:
    """One step in this runner: its folder laid out, its start noted (in its batch's progress file, else
    by a mark in its folder), the step, its result (noted in the progress file too)."""
    _note(progress, {"node": plan["node_id"], "started": time.time()})
    result = _step(plan, mark=progress is None)
    _note(progress, {"node": plan["node_id"], "result": result})
    return result


def _step(plan: dict, mark: bool = True) -> dict:
    from pai_lab.pipelines import executors

    work = Path(plan["work_dir"])
    try:
        _, _, env = executors.prepare(plan, _BASE_ENV, warm=True)
    except executors.StepRefused as exc:
        return {"exit_code": -1, "outputs": {}, "error": str(exc), "tail": []}
    except Exception as exc:  # noqa: BLE001 - a full disk fails the step, with why
        return {"exit_code": -1, "outputs": {}, "error": f"could not prepare the step: {exc}", "tail": []}
    if mark:
        (work / executors.STARTED_MARK).write_text(str(time.time()))
    code = _call(plan, str(work), env)
    return executors.step_result(plan, code, work / "logs.txt")


def _set_environ(env: dict) -> None:
    """This process's environment made ``env``, changing only what differs (clearing ~100 variables and
    setting them again is a millisecond a step)."""
    for key in [k for k in os.environ if k not in env]:
        del os.environ[key]
    for key, value in env.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


def _call(plan: dict, work: str, env: dict) -> int:
    import traceback

    _set_environ(env)
    os.chdir(work)
    sys.stdout.flush()
    sys.stderr.flush()
    log = os.open(os.path.join(work, "logs.txt"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    step = {"parameters": plan["parameters"], "outputs_spec": plan["outputs_spec"]}  # a process's step.json
    try:
        if plan["kind"] == "builtin":
            from pai_lab.pipelines.builtins import _main as builtin_main

            return builtin_main(work, plan["builtin"], step)
        import base64

        from pai_lab.pipelines.executors import _function_main

        return _function_main(work, base64.b64decode(plan["pickle"]), step)
    except SystemExit as exc:  # a step that calls sys.exit ends its step, not the runner
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - the step's own error: its traceback goes to its log
        traceback.print_exc()
        return 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        if not _QUIET:
            _QUIET.append(os.open(os.devnull, os.O_WRONLY))
        os.dup2(_QUIET[0], 1)
        os.dup2(_QUIET[0], 2)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    idle = float(args[args.index("--idle") + 1]) if "--idle" in args else IDLE_SECONDS
    # what a FunctionOperator or built-in step needs, imported before the first step asks
    import cloudpickle  # noqa: F401

    import pai_lab.pipelines.context
    import pai_lab.pipelines.executors  # noqa: F401

    _BASE_ENV.update(os.environ)
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    quiet = os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, 1)  # nothing a step prints reaches the answers
    os.close(quiet)
    requests = sys.stdin.buffer
    while True:
        ready, _, _ = select.select([requests], [], [], idle)
        if not ready:
            return 0  # idle: the pool stopped handing this runner steps a while ago
        line = requests.readline()
        if not line:
            return 0  # the pool closed it
        request = json.loads(line)
        plans = request.get("plans") or [request["plan"]]
        progress = open_progress(plans[0].get("progress"))
        try:
            for plan in plans:  # a batch's steps, one after another
                answers.write(json.dumps({"result": _one(plan, progress)}) + "\n")
                answers.flush()
        finally:
            if progress is not None:
                os.close(progress)


if __name__ == "__main__":
    sys.exit(main())
