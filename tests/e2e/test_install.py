"""After `pip install`, Jupyter lists both halves of pai_lab as enabled and OK, with no extra step."""

from __future__ import annotations

import re
import subprocess
import sys

from pai_lab import __version__

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def jupyter(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "jupyter", *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return ANSI.sub("", done.stdout + done.stderr)


def test_labextension_is_installed_prebuilt_and_enabled():
    listed = jupyter("labextension", "list")
    line = next((ln for ln in listed.splitlines() if ln.strip().startswith("pai-lab ")), None)
    assert line is not None, listed
    assert f"v{__version__}" in line and "enabled" in line and "OK" in line, line


def test_server_extension_is_enabled_and_loads():
    listed = jupyter("server", "extension", "list")
    assert re.search(r"^\s*pai_lab\s+enabled", listed, re.M), listed
    assert re.search(rf"^\s*pai_lab {re.escape(__version__)} OK", listed, re.M), listed
