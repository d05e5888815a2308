"""pai_lab's version, read from the installed package's metadata.

labextension/package.json is the one source: the build (hatch-nodejs-version) copies its version into
the metadata, so the Python package and the sidebar never disagree.
"""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


def _version() -> str:
    try:
        return version("pai_lab")
    except PackageNotFoundError:  # a checkout run without installing: read the source itself
        package_json = Path(__file__).resolve().parents[1] / "labextension" / "package.json"
        try:
            return json.loads(package_json.read_text())["version"]
        except (OSError, ValueError, KeyError):
            return "0+unknown"


__version__ = _version()
