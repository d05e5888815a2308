"""What runs on a Dask worker for one step, and the process a FunctionOperator step runs in.

:func:`run_step` lays out the step's work folder with PAI's container contract, starts the step's
own process (``python -m <entry> --<param> <value>`` for a ScriptOperator, this module for a
FunctionOperator, whose pickle is loaded there and only there), waits for it (ending its whole
process group when the run is terminated) and reads back the output pointers. It returns a small
dict; the data stays where the step wrote it.
"""

from __future__ import annotations

import base64
import io
import json
import locale
import os
import subprocess
import sys
import tarfile
import time
from collections import deque
from pathlib import Path

STARTED_MARK = ".started"  # a step run alone: for the driver to see it start (a batch's steps: its progress)
# Steps whose code pai_lab loads itself run in a warm runner of their run (runner.py); a ScriptOperator,
# whose entry file is a program of its own, keeps a process each.
WARM_KINDS = ("function", "builtin")
TAIL_LINES = 20
_ENCODING = locale.getpreferredencoding(False)  # a text file's, as open() writes it


def _extract(archive_b64: str, target: Path) -> None:
    with tarfile.open(fileobj=io.BytesIO(base64.b64decode(archive_b64)), mode="r:gz") as tar:
        for member in tar.getmembers():
            name = Path(member.name)
            if not member.isfile() or name.is_absolute() or ".." in name.parts:
                continue  # the SDK packs plain files only; anything else is not ours to write
            out = target / name
            out.parent.mkdir(parents=True, exist_ok=True)
            with tar.extractfile(member) as src:  # type: ignore[union-attr]
                out.write_bytes(src.read())


def _tail(log: Path) -> list[str]:
    from pai_lab.security.paths import open_own_file

    f = open_own_file(log)  # the step wrote its folder: a log turned into a link is not followed
    if f is None:
        return []
    with f:
        return [line.rstrip("\n") for line in deque(f, maxlen=TAIL_LINES)]


def _as_text(value) -> str:
    return json.dumps(value) if isinstance(value, (dict, list)) else str(value)


class StepRefused(Exception):
    """The step can not run on this worker; the message says why and what to do instead."""


def pai_variables(plan: dict) -> dict[str, str]:
    """PAI's variables of a step (its container contract), for its process or its container."""
    return {
        "PYTHONUNBUFFERED": "1",
        "PAI_WORK_DIR": str(plan["work_dir"]),
        "PAI_INPUTS_PARAMETERS": json.dumps([{"name": k, "value": _as_text(v)} for k, v in plan["parameters"].items()]),
        "PAI_MANIFEST_SPEC_INPUTS": json.dumps(plan["inputs_spec"]),
        "PAI_MANIFEST_SPEC_OUTPUTS": json.dumps(plan["outputs_spec"]),
        "PAI_RUN_ID": plan["run_id"],
        "PAI_NODE_ID": plan["node_id"],
        "PAI_WORKSPACE_ID": plan["workspace_id"],
        "PAI_USER_ID": plan["user"],
    }


def lay_out(plan: dict, *, warm: bool = False) -> Path:
    """The step's work folder with PAI's container contract, made in one pass: each folder once, parents
    first, each file once. A folder made here is new; one that was there (a retry) loses its inputs,
    outputs and code first, and keeps its log. ``warm``: for a warm runner, which holds the step's pickle
    and ``step.json`` in memory (no ``code`` folder, no ``step.json``)."""
    work = Path(plan["work_dir"])
    try:
        os.mkdir(work)
    except FileNotFoundError:
        work.mkdir(parents=True, exist_ok=True)
        _clear(work)
    except FileExistsError:
        _clear(work)  # a retry starts from a clean folder
    parameters = plan["parameters"]
    artifacts = {name: value for name, value in plan["artifacts"].items() if value is not None}
    outputs = [out["name"] for out in plan["outputs_spec"].get("artifacts", [])]
    folders = ["inputs"] if parameters or artifacts else []
    folders += ["inputs/parameters"] if parameters else []
    folders += ["inputs/artifacts", *(f"inputs/artifacts/{n}" for n in artifacts)] if artifacts else []
    folders += ["outputs", "outputs/parameters"]
    folders += ["outputs/artifacts", *(f"outputs/artifacts/{n}" for n in outputs)] if outputs else []
    folders += [] if warm else ["code"]
    for folder in folders:
        os.mkdir(work / folder)
    files = {f"inputs/parameters/{n}": _as_text(v) for n, v in parameters.items()}
    files.update({f"inputs/artifacts/{n}/data": json.dumps(v) for n, v in artifacts.items()})
    if not warm:  # what a step's own process reads its parameters from (a warm runner has them in hand)
        files["step.json"] = json.dumps({"parameters": parameters, "outputs_spec": plan["outputs_spec"]})
    for name, text in files.items():
        fd = os.open(work / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            os.write(fd, text.encode(_ENCODING))  # as open(path, "w") would, without its buffers' calls
        finally:
            os.close(fd)
    return work


def _clear(work: Path) -> None:
    import shutil

    for sub in ("inputs", "outputs", "code"):
        if (work / sub).exists():
            shutil.rmtree(work / sub)


def prepare(plan: dict, base_env: dict | None = None, *, warm: bool = False) -> tuple[list[str], str, dict]:
    """Lay out the work folder; return the command, its folder and its environment (made from
    ``base_env``, by default this process's). ``warm``: for a warm runner, which holds a function step's
    pickle in memory (no ``code/function.pkl``)."""
    work = lay_out(plan, warm=warm)

    from pai_lab.training.isolation import scrub

    env = scrub(dict(os.environ if base_env is None else base_env))  # never the server's own credentials
    from pai_lab.training import job_storage

    job_storage.apply(env, plan.get("storage") or {"embedded_cluster": True})  # nor its AWS_* ones
    own_env = {str(k): str(v) for k, v in (plan.get("env") or {}).items()}  # the operator's envs
    if not plan.get("sandbox") and plan["kind"] != "container":  # a container's are set inside it
        env.update(own_env)
    env.update(pai_variables(plan))
    if plan["kind"] == "container":
        from pai_lab.pipelines.container import docker_argv, docker_problem, unavailable_message

        problem = docker_problem()
        if problem:
            raise StepRefused(unavailable_message(problem))
        argv = docker_argv(plan, pai_variables(plan), user=f"{os.getuid()}:{os.getgid()}")
        return argv, str(work), env
    if plan["kind"] == "script":
        _extract(plan["archive"], work / "code")
        entry = plan["entry_file"]
        env["PAI_PROGRAM_ENTRY_POINT"] = entry
        env["PAI_SOURCE_CODE_URL"] = f"sha256:{plan.get('code_sha256', '')}"
        argv = [sys.executable, "-m", entry[:-3]]
        for name, value in plan["parameters"].items():  # PAI's launch: parameters become --name value
            argv += [f"--{name}", _as_text(value)]
        cwd = work / "code"
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(cwd), env.get("PYTHONPATH", "")) if p)
    elif plan["kind"] == "builtin":
        argv = [sys.executable, "-m", "pai_lab.pipelines.builtins", str(work), plan["builtin"]]
        cwd = work
    else:
        if not warm:
            (work / "code" / "function.pkl").write_bytes(base64.b64decode(plan["pickle"]))
        argv = [sys.executable, "-m", "pai_lab.pipelines.executors", str(work)]
        cwd = work
    if plan.get("sandbox") and plan["kind"] not in WARM_KINDS:  # a runner is sandboxed when it starts
        from pai_lab.training.isolation import sandboxed_argv

        argv = sandboxed_argv(plan["sandbox"], argv, str(cwd), [])
        # the operator's variables are set inside the sandbox only: bubblewrap itself never runs with a
        # member's LD_PRELOAD or the like
        cut = argv.index("--")
        argv = [*argv[:cut], *[x for k, v in own_env.items() for x in ("--setenv", k, v)], *argv[cut:]]
    return argv, str(cwd), env


def _own_text(path: Path) -> str | None:
    """An output file the step wrote, read only as a regular file: a link it made (to server.json, to
    another run) is no output, whoever reads it (a container's or a script's outputs are read outside
    their sandbox)."""
    from pai_lab.security.paths import open_own_file

    f = open_own_file(path)
    if f is None:
        return None
    with f:
        return f.read()


def collect(plan: dict) -> dict:
    """The step's outputs as the work folder holds them: pointers, never data."""
    work = Path(plan["work_dir"])
    artifacts, parameters, missing = {}, {}, []
    for out in plan["outputs_spec"].get("artifacts", []):
        folder = work / "outputs" / "artifacts" / out["name"]
        data = folder / "data"
        text = _own_text(data)
        if text is not None:
            try:
                value = json.loads(text)
            except ValueError:
                value = text
            artifacts[out["name"]] = (
                value if isinstance(value, dict) and "location" in value else {"location": {"uri": str(value)}}
            )
        elif folder.is_dir() and any(folder.iterdir()):  # files written beside the pointer: the folder is it
            artifacts[out["name"]] = {"location": {"uri": f"file://{folder}"}}
        elif out.get("value") is not None:
            artifacts[out["name"]] = out["value"]
        else:
            missing.append(out["name"])
    for out in plan["outputs_spec"].get("parameters", []):
        text = _own_text(work / "outputs" / "parameters" / out["name"])
        if text is not None:
            try:
                parameters[out["name"]] = json.loads(text)
            except ValueError:
                parameters[out["name"]] = text
        elif out.get("value") is not None:
            parameters[out["name"]] = out["value"]
        else:
            missing.append(out["name"])
    return {"artifacts": artifacts, "parameters": parameters, "missing": missing}


def run_step(task: dict | str) -> dict:
    """The Dask task of one step (its plan, or as the driver submits it, the plan as JSON text). Returns
    {exit_code, outputs, error, tail}."""
    from pai_lab.training.rank_process import _die_with_parent, _end_process_tree

    plan: dict = json.loads(task) if isinstance(task, str) else task

    work = Path(plan["work_dir"])
    work.mkdir(parents=True, exist_ok=True)
    log = work / "logs.txt"
    stop = Path(plan["stop_file"])
    if plan["kind"] in WARM_KINDS:  # the run's warm runner lays out the folder and runs the step
        from pai_lab.pipelines.runner import run_in_runner

        return _answered(plan, run_in_runner(plan, stop))
    try:
        argv, cwd, env = prepare(plan)
    except StepRefused as exc:
        return {"exit_code": -1, "outputs": {}, "error": str(exc), "tail": []}
    except Exception as exc:  # noqa: BLE001 - a bad archive or a full disk fails the step, with why
        return {"exit_code": -1, "outputs": {}, "error": f"could not prepare the step: {exc}", "tail": []}
    (work / STARTED_MARK).write_text(str(time.time()))
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509
        )
        while proc.poll() is None:
            if stop.exists():
                _end_process_tree(proc)
                if plan["kind"] == "container":  # the client is gone; its container is not
                    from pai_lab.pipelines.container import container_name

                    subprocess.run(["docker", "rm", "-f", container_name(plan)], capture_output=True, timeout=30)
                return {"exit_code": proc.returncode, "outputs": {}, "error": "terminated", "tail": _tail(log)}
            time.sleep(0.05)
    return step_result(plan, proc.returncode, log)


def run_steps(task: list[dict] | str) -> list[dict]:
    """The Dask task of several ready steps of one run (a wide fan-out's batch, one task instead of one
    each): they go to the run's warm runner in one request and run there one after another, each as
    :func:`run_step` would run it; the runner notes each step's start and result in the batch's progress
    file (the plans' ``progress``, a line each) so the driver sees the step start and end before its batch
    does. Steps not begun when the run is stopped are terminated unrun; one step's failure is its own."""
    from pai_lab.pipelines.runner import run_batch

    plans: list[dict] = json.loads(task) if isinstance(task, str) else task  # JSON text: as the driver submits
    answers = run_batch(plans, Path(plans[0]["stop_file"]))
    return [_answered(plan, answer) for plan, answer in zip(plans, answers)]


def _answered(plan: dict, answer: dict | int | str) -> dict:
    """A warm runner's answer for a step as the step's result."""
    log = Path(plan["work_dir"]) / "logs.txt"
    if answer == "terminated":
        return {"exit_code": -1, "outputs": {}, "error": "terminated", "tail": _tail(log)}
    return answer if isinstance(answer, dict) else step_result(plan, int(answer), log)


def step_result(plan: dict, code: int, log: Path) -> dict:
    """What a step that ended with ``code`` hands back: its outputs, or why it failed and its log's tail."""
    if code != 0:
        return {
            "exit_code": code,
            "outputs": {},
            "tail": _tail(log),
            "error": f"the step's process exited with code {code}",
        }
    outputs = collect(plan)
    if outputs.pop("missing"):
        return {
            "exit_code": 0,
            "outputs": outputs,
            "tail": _tail(log),
            "error": "the step did not write its output(s) "
            + ", ".join(collect(plan)["missing"])
            + " (write outputs/artifacts/<name>/data, or use context.output_artifacts[name])",
        }
    return {"exit_code": 0, "outputs": outputs, "error": "", "tail": []}


def _function_main(work_dir: str, pickled: bytes | None = None, step: dict | None = None) -> int:
    """A FunctionOperator step's own process (or its run's warm runner, with the pickle and the step's
    ``step.json`` in hand): load the pickle here, call the function, write its outputs."""
    import inspect

    import cloudpickle

    from pai_lab.pipelines.context import Context

    work = Path(work_dir)
    step = step if step is not None else json.loads((work / "step.json").read_text())
    fn = cloudpickle.loads(pickled if pickled is not None else (work / "code" / "function.pkl").read_bytes())
    context = Context(work_dir)
    sig = inspect.signature(fn)
    takes_any = any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values())
    kwargs = {k: v for k, v in step["parameters"].items() if takes_any or k in sig.parameters}
    if "context" in sig.parameters:
        kwargs["context"] = context
    result = fn(**kwargs)
    outs = step["outputs_spec"]
    param_names = [p["name"] for p in outs.get("parameters", [])]
    art_names = [a["name"] for a in outs.get("artifacts", [])]
    names = param_names + art_names
    keyed = isinstance(result, dict) and any(k in names for k in result)
    if result is not None and not keyed and len(names) == 1:  # the one output's value (a Map, a location)
        result = {names[0]: result}
    for name, value in (result or {}).items() if isinstance(result, dict) else ():
        if name in param_names:
            context.write_parameter(name, value)
        elif name in art_names:
            context.output_artifacts[name].write_output(value)
    return 0


if __name__ == "__main__":
    sys.exit(_function_main(sys.argv[1]))
