"""The Python checks, run from pytest so the README's test command runs them too.

ruff lints the whole repository and checks its formatting, and mypy type-checks the domain packages,
all as configured in pyproject.toml (``[tool.ruff]``, ``[tool.mypy]``). Both come with the ``test``
extra. mypy keeps its cache in .mypy_cache, so only the first run checks everything.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(tool: str, *args: str) -> subprocess.CompletedProcess:
    if importlib.util.find_spec(tool) is None:
        pytest.fail(f"{tool} is not installed: pip install -e '.[test]' brings it")
    return subprocess.run(
        [sys.executable, "-m", tool, *args], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )


def test_ruff_finds_nothing():
    result = run("ruff", "check", "--no-fix", "--output-format", "concise", ".")
    assert result.returncode == 0, f"ruff check reports:\n{result.stdout}{result.stderr}"


def test_ruff_format_leaves_every_file_as_it_is():
    result = run("ruff", "format", "--check", ".")
    assert result.returncode == 0, f"run `ruff format .`; ruff format --check reports:\n{result.stdout}{result.stderr}"


def test_mypy_finds_nothing_in_the_domain_packages():
    result = run("mypy")  # the packages and settings are in pyproject.toml
    assert result.returncode == 0, f"mypy reports:\n{result.stdout}{result.stderr}"
