"""One version and a declared licence: labextension/package.json is the version's only source."""

from __future__ import annotations

import importlib.metadata as md
import json
from pathlib import Path

import pytest

import pai_lab

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PACKAGE_JSON = json.loads((ROOT / "labextension" / "package.json").read_text())


def test_the_version_is_read_from_the_sidebars_package_json():
    assert "version" in PYPROJECT["project"]["dynamic"]
    assert PYPROJECT["tool"]["hatch"]["version"] == {"source": "nodejs", "path": "labextension/package.json"}
    assert any(r.startswith("hatch-nodejs-version") for r in PYPROJECT["build-system"]["requires"])


def test_python_and_the_sidebar_report_the_same_version():
    installed = md.version("pai_lab")
    assert installed == PACKAGE_JSON["version"], (
        f"the installed pai_lab is {installed} but labextension/package.json says {PACKAGE_JSON['version']}: "
        "reinstall (pip install -e .)"
    )
    assert pai_lab.__version__ == installed


def test_the_licence_is_declared_and_shipped():
    assert PYPROJECT["project"]["license"] == "BSD-3-Clause" == PACKAGE_JSON["license"]
    assert PYPROJECT["project"]["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("BSD 3-Clause License") and "2026, pai_lab contributors" in text
