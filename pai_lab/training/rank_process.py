"""A rank's process and its end: started so that it dies with the Dask worker thread that started it,
ended with its whole process tree (and what it left behind) when the job stops or the rank's task ends.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
from collections.abc import Callable

from pai_lab.training import isolation

STOP_GRACE_SECONDS = 5.0

_prctl: Callable[..., int] | None
try:
    _libc = ctypes.CDLL(None, use_errno=True)
    _prctl = _libc.prctl
except (OSError, AttributeError):  # not Linux
    _prctl = None


def _die_with_parent() -> None:
    # PR_SET_PDEATHSIG: the rank dies with the Dask worker thread that started it.
    if _prctl is not None:
        _prctl(1, signal.SIGKILL, 0, 0, 0)


_setpriv: list[str | None] = []  # util-linux's setpriv, once this worker has checked it has --pdeathsig


def _found(command: str, path: str | None, cwd: str) -> bool:
    """Whether a rank started in ``cwd`` with ``path`` as its PATH finds ``command``, as its exec does: a
    command with a slash (``./train.sh``) is relative to ``cwd``, one without (``python``) is looked up on
    ``path`` (the system's default when it has none), whose relative entries are relative to ``cwd`` too;
    never the worker's own folder or PATH."""
    if os.sep in command:
        return shutil.which(os.path.join(cwd, command)) is not None
    dirs = (os.defpath if path is None else path).split(os.pathsep)
    return shutil.which(command, path=os.pathsep.join(os.path.join(cwd, d) for d in dirs)) is not None


def _with_parent_death(argv: list[str], path: str | None, cwd: str) -> list[str] | None:
    """``argv`` started through `setpriv --pdeathsig KILL`, which sets what :func:`_die_with_parent` does and
    execs it (same pid); None where setpriv cannot, or the rank (in ``cwd``, with PATH ``path``) would not
    find ``argv[0]`` (Popen then says so, as ever). A Popen without ``preexec_fn`` starts the rank with
    vfork instead of copying the worker's whole address space (tens of ms in a control plane's large
    process, per rank, on the launch's critical path)."""
    if not _setpriv:
        found = shutil.which("setpriv") if _prctl is not None else None
        try:
            ok = (
                found is not None
                and subprocess.run([found, "--pdeathsig", "KILL", "--", "true"], timeout=10).returncode == 0
            )
        except (OSError, subprocess.SubprocessError):
            ok = False
        _setpriv.append(found if ok else None)
    if _setpriv[0] is None or not _found(argv[0], path, cwd):
        return None
    return [_setpriv[0], "--pdeathsig", "KILL", "--", *argv]


def _end_process_tree(proc: subprocess.Popen) -> None:
    """SIGTERM the rank's process group (after SIGCONT, so a stopped rank sees it), then SIGKILL."""
    try:
        import psutil

        family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    except Exception:  # noqa: BLE001
        family = []
    for sig in (signal.SIGCONT, signal.SIGTERM):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
    try:
        proc.wait(STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for member in family:  # anything that left the group (setsid) still goes
        try:
            member.kill()
        except Exception:  # noqa: BLE001, S110
            pass
    proc.wait()


def _end_leftovers(proc: subprocess.Popen, pod: str) -> None:
    """What the rank's command left behind when it ended (background children, daemons that left its
    group): they end with the rank."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        isolation.end_processes(isolation.job_processes(pod=pod))
    except Exception:  # noqa: BLE001, S110 - psutil cannot read this system: the group kill above still ran
        pass
