"""`pai server` reads its flags and hands them to PaiLabApp.control_plane; what it refuses, it says in one
line that names the flag."""

from __future__ import annotations

import subprocess
import sys


def pai(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pai_lab", *args], capture_output=True, text=True, timeout=120, check=False, cwd=cwd
    )


def test_a_root_that_is_not_a_folder_is_refused(tmp_path):
    done = pai("server", "--root", str(tmp_path / "missing"))
    assert done.returncode == 2
    assert "--root" in done.stderr and "is not a folder; create it first" in done.stderr


def test_a_user_without_a_token_is_refused(tmp_path):
    done = pai("server", "--root", str(tmp_path), "--user", "alice")
    assert done.returncode == 2
    assert "--user expects NAME=TOKEN, got 'alice'" in done.stderr


def test_stop_with_a_process_that_is_gone_is_refused_and_leaves_no_runtime_file(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    done = pai("server", "--root", str(tmp_path), "--stop-with", str(gone.pid))
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"--stop-with {gone.pid}: no such process" in done.stderr
    assert not (tmp_path / ".pai_lab" / "server.json").exists()
