"""Inside a step: PAI's runtime ``Context`` (``pai_running.context.Context``) over the step's work folder.

The folder follows PAI's container contract: ``inputs/parameters/<name>``, ``inputs/artifacts/<name>/data``
(a location JSON), and ``outputs/artifacts/<name>/data`` for what the step makes. ``PAI_WORK_DIR`` names
it (PAI's ``<container-work>``).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any


def _local(uri: str | None) -> str | None:
    if not uri:
        return None
    return uri[len("file://") :] if uri.startswith("file://") else (uri if "://" not in uri else None)


class InputArtifact:
    def __init__(self, name: str, folder: Path):
        self.name = name
        self.path = str(folder / "data")

    @property
    def raw_value(self) -> str:
        return Path(self.path).read_text()

    @property
    def value(self) -> dict:
        return json.loads(self.raw_value)

    @property
    def location(self) -> dict:
        return self.value.get("location", {})

    @property
    def uri(self) -> str | None:
        return self.location.get("uri")

    def local_path(self) -> str:
        """The artifact's data on this machine (a file or a folder)."""
        found = _local(self.uri)
        if found is None:
            raise ValueError(f"artifact {self.name!r} is not a local path: {self.raw_value}")
        return found

    def get_table(self) -> str:
        """PAI's name for where the data is: here its URI (or dataset name)."""
        loc = self.location
        return loc.get("uri") or loc.get("dataset") or loc.get("table") or self.raw_value

    def read_dataframe(self):
        import pandas as pd

        path = Path(self.local_path())
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix in (".csv", ".parquet"))
            if not files:
                raise ValueError(f"artifact {self.name!r}: no .csv or .parquet file in {path}")
            path = files[0]
        return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)

    def open(self, mode: str = "rb"):
        return open(self.local_path(), mode)

    def __bool__(self) -> bool:
        return os.path.exists(self.path)

    def __repr__(self) -> str:
        return f"<InputArtifact {self.name}: {self.raw_value if self else 'not connected'}>"


class OutputArtifact:
    def __init__(self, name: str, folder: Path):
        self.name = name
        self.folder = folder
        self.path = str(folder / "data")

    @property
    def local_dir(self) -> str:
        """A folder of this step's own for the artifact's files (outputs/artifacts/<name>/files)."""
        files = self.folder / "files"
        files.mkdir(parents=True, exist_ok=True)
        return str(files)

    def write_output(self, value: dict | str) -> None:
        """Write the artifact's location: a ``{"location": {...}}`` dict, or a string (a path or URI)."""
        text = json.dumps(value) if isinstance(value, dict) else str(value)
        self.folder.mkdir(parents=True, exist_ok=True)
        Path(self.path).write_text(text)

    def save_dir(self, local_dir: str) -> str:
        target = Path(self.local_dir)
        shutil.copytree(local_dir, target, dirs_exist_ok=True)
        self.write_output({"location": {"uri": f"file://{target}"}})
        return str(target)

    def save_dataframe(self, df, filename: str = "data.csv") -> str:
        target = Path(self.local_dir) / filename
        if filename.endswith(".parquet"):
            df.to_parquet(target)
        else:
            df.to_csv(target, index=False)
        self.write_output({"location": {"uri": f"file://{target}"}})
        return str(target)

    def __repr__(self) -> str:
        return f"<OutputArtifact {self.name}>"


class _Artifacts:
    """Indexable by position or name, iterable."""

    def __init__(self, items: list):
        self._items = items

    def __getitem__(self, key):
        if isinstance(key, str):
            for a in self._items:
                if a.name == key:
                    return a
            raise KeyError(f"{key!r}: not one of {', '.join(a.name for a in self._items) or 'none'}")
        return self._items[key]

    def __iter__(self):
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


class Context:
    """The current step's inputs and outputs."""

    def __init__(self, work_dir: str | None = None):
        self.work_dir = Path(work_dir or os.environ.get("PAI_WORK_DIR") or "/work")
        self.inputs_spec = json.loads(os.environ.get("PAI_MANIFEST_SPEC_INPUTS") or "{}")
        self.outputs_spec = json.loads(os.environ.get("PAI_MANIFEST_SPEC_OUTPUTS") or "{}")
        self.user_id = os.environ.get("PAI_USER_ID", "")
        self.workspace_id = os.environ.get("PAI_WORKSPACE_ID", "")
        self.run_id = os.environ.get("PAI_RUN_ID", "")
        self.node_id = os.environ.get("PAI_NODE_ID", "")

    @property
    def input_parameters(self) -> dict[str, str]:
        folder = self.work_dir / "inputs" / "parameters"
        return {p.name: p.read_text() for p in sorted(folder.iterdir())} if folder.is_dir() else {}

    @property
    def input_artifacts(self) -> _Artifacts:
        names = [a["name"] for a in self.inputs_spec.get("artifacts", [])]
        return _Artifacts([InputArtifact(n, self.work_dir / "inputs" / "artifacts" / n) for n in names])

    @property
    def output_artifacts(self) -> _Artifacts:
        names = [a["name"] for a in self.outputs_spec.get("artifacts", [])]
        return _Artifacts([OutputArtifact(n, self.work_dir / "outputs" / "artifacts" / n) for n in names])

    def write_parameter(self, name: str, value: Any) -> None:
        folder = self.work_dir / "outputs" / "parameters"
        try:
            (folder / name).write_text(json.dumps(value))
        except FileNotFoundError:  # a step that removed its folder (it is laid out with the step's)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(json.dumps(value))
