"""Operators: what one step runs. PAI's ScriptOperator (a folder of Python with an entry file) and a
notebook-native FunctionOperator (a plain Python function, shipped pickled).

An operator is its signature (inputs, outputs) and its implementation, and serialises to PAI's
manifest; the code travels inside the manifest (the packed folder, the pickle), as PAI uploads it
to OSS, so the server never reads a member's files and a run keeps what the code was.
"""

from __future__ import annotations

import base64
import hashlib
import inspect
import io
import random
import string
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pai_lab.pipelines.manifest import check_name_or_default, dumps
from pai_lab.pipelines.manifest_shapes import API_VERSION, MAX_CODE_BYTES
from pai_lab.pipelines.types import (
    PipelineArtifact,
    PipelineError,
    PipelineParameter,
    PipelineVariable,
    VariablesSpec,
)

DEFAULT_VERSION = "v1"
_SKIPPED_DIRS = {"__pycache__", ".git", ".ipynb_checkpoints", ".pai_lab", "node_modules"}


def _temp_identifier() -> str:
    return "tmp-" + "".join(random.choices(string.ascii_lowercase, k=16))


def _default_provider() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in this environment
        return "local"


class OperatorBase:
    """What every operator (and a Pipeline) shares: a signature, an identity, a manifest, run()."""

    def __init__(
        self,
        inputs: list[PipelineVariable] | None = None,
        outputs: list[PipelineVariable] | None = None,
        identifier: str | None = None,
        version: str | None = None,
        provider: str | None = None,
    ):
        self._inputs = VariablesSpec([v.copy(io_type="inputs", parent=None) for v in (inputs or [])])
        self._outputs = VariablesSpec([v.copy(io_type="outputs", parent=None) for v in (outputs or [])])
        self.identifier = check_name_or_default(identifier, _temp_identifier(), "identifier")
        self.version = version or DEFAULT_VERSION
        self.provider = provider or _default_provider()

    @property
    def inputs(self) -> VariablesSpec:
        return self._inputs

    @property
    def outputs(self) -> VariablesSpec:
        return self._outputs

    @property
    def metadata(self) -> dict:
        return {"identifier": self.identifier, "provider": self.provider, "version": self.version}

    def spec_to_dict(self) -> dict:
        return {"inputs": self.inputs.to_dict(), "outputs": self.outputs.to_dict()}

    def to_dict(self) -> dict:
        return {"apiVersion": API_VERSION, "metadata": self.metadata, "spec": self.spec_to_dict()}

    def to_yaml(self) -> str:
        return dumps(self.to_dict(), "yaml")

    def to_json(self) -> str:
        return dumps(self.to_dict(), "json")

    def as_step(self, inputs: dict | list | None = None, name: str | None = None, depends=None):
        from pai_lab.pipelines.pipeline import PipelineStep

        return PipelineStep(operator=self, inputs=inputs, name=name, depends=depends)

    def run(
        self,
        job_name: str | None = None,
        arguments: dict | None = None,
        wait: bool = True,
        show_outputs: bool = True,
        *,
        workspace=None,
        cache: bool = True,
        timeout: float | None = None,
    ):
        """Run on the pai_lab control plane (``workspace``: a workspace client or name; default: the
        server this process finds, workspace "default"). Returns a PipelineRun."""
        from pai_lab.client.pipelines import workspace_client

        ws = workspace_client(workspace)
        return ws.pipelines.run(
            self, arguments=arguments, name=job_name, wait=wait, show_outputs=show_outputs, cache=cache, timeout=timeout
        )

    def save(self, identifier: str, version: str = DEFAULT_VERSION, *, workspace=None) -> SavedOperator:
        """Save in the workspace's registry as identifier@version (the provider is you); returns the
        SavedOperator, usable as ``PipelineStep(identifier=..., version=...)`` in later pipelines."""
        from pai_lab.client.pipelines import workspace_client

        return workspace_client(workspace).pipelines.save(self, identifier, version)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.identifier}@{self.version}>"


class SavedOperator(OperatorBase):
    """An operator (or pipeline) from the workspace's registry, by ``pipeline_id`` or its triple."""

    def __init__(self, pipeline_id: str, manifest: dict | None = None, workspace=None):
        if manifest is None:
            from pai_lab.client.pipelines import workspace_client

            manifest = workspace_client(workspace).pipelines.operator(pipeline_id).manifest
        meta = manifest.get("metadata") or {}
        spec = manifest.get("spec") or {}
        self.pipeline_id = pipeline_id
        self._manifest = manifest
        self._inputs = VariablesSpec.from_dict(spec.get("inputs"), "inputs")
        self._outputs = VariablesSpec.from_dict(spec.get("outputs"), "outputs")
        self.identifier = meta.get("identifier", "")
        self.version = meta.get("version", DEFAULT_VERSION)
        self.provider = meta.get("provider", "")

    @property
    def id(self) -> str:
        return self.pipeline_id

    @property
    def manifest(self) -> dict:
        return dict(self._manifest)

    @property
    def raw_manifest(self) -> str:
        return dumps(self._manifest, "yaml")

    def to_dict(self) -> dict:
        return dict(self._manifest)

    def spec_to_dict(self) -> dict:
        return dict(self._manifest.get("spec") or {})

    def save(self, identifier: str, version: str = DEFAULT_VERSION, *, workspace=None):
        raise NotImplementedError("a SavedOperator is saved already; save the operator it came from to copy it")

    @classmethod
    def get(cls, pipeline_id: str, *, workspace=None) -> SavedOperator:
        return cls(pipeline_id, workspace=workspace)

    @classmethod
    def list(
        cls, identifier: str | None = None, provider: str | None = None, version: str | None = None, *, workspace=None
    ):
        """The saved operators that match, one at a time (a generator, as in PAI)."""
        from pai_lab.client.pipelines import workspace_client

        pipelines = workspace_client(workspace).pipelines
        for info in pipelines.operators(identifier=identifier, provider=provider, version=version):
            yield pipelines.operator(info.pipeline_id)

    @classmethod
    def get_by_identifier(
        cls, identifier: str, provider: str | None = None, version: str = DEFAULT_VERSION, *, workspace=None
    ) -> SavedOperator:
        from pai_lab.client.pipelines import workspace_client

        pipelines = workspace_client(workspace).pipelines
        found = pipelines.operators(identifier=identifier, provider=provider, version=version)
        if not found:
            whose = f" of provider {provider!r}" if provider else ""
            others = sorted({o.version for o in pipelines.operators(identifier=identifier, provider=provider)})
            if others:  # the operator is there, the version is not
                raise PipelineError(
                    f"no version {version!r} of saved operator {identifier!r}{whose} in this workspace; "
                    f"saved versions: {', '.join(others)}",
                    "version",
                )
            hint = (
                " (built-in 'pai' operators: split, type_transform, sql, normalize_1, logisticregression_binary, "
                "Prediction_1, evaluate_1)"
                if provider == "pai"
                else ""
            )
            raise PipelineError(
                f"no saved operator {identifier}@{version}{whose} in this workspace{hint}; "
                "save one with op.save(identifier, version)",
                "identifier",
            )
        if len(found) > 1:
            raise PipelineError(
                f"{identifier}@{version} is saved by {', '.join(f.provider for f in found)}; name the provider",
                "provider",
            )
        return pipelines.operator(found[0].pipeline_id)


def _pack(folder: Path) -> bytes:
    """A folder as a deterministic .tar.gz (sorted names, no times, no owners): equal code, equal bytes."""
    buf = io.BytesIO()
    import gzip

    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        for path in sorted(folder.rglob("*")):
            rel = path.relative_to(folder)
            if any(part in _SKIPPED_DIRS for part in rel.parts) or path.is_symlink() or not path.is_file():
                continue
            info = tarfile.TarInfo(rel.as_posix())
            data = path.read_bytes()
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
            if buf.tell() > MAX_CODE_BYTES:
                raise PipelineError(
                    f"source_dir {str(folder)!r} packs to more than {MAX_CODE_BYTES >> 20} MiB; keep "
                    "data out of it and pass data as an artifact",
                    "source_dir",
                )
    return buf.getvalue()


class ScriptOperator(OperatorBase):
    """A Python script with its folder, run as ``python -m <entry> --<param> <value> ...`` (PAI's launch).

    Takes the SDK's ``entry_file``/``source_dir`` and the manual's ``entry_point``/``script_dir``."""

    def __init__(
        self,
        entry_file: str | None = None,
        source_dir: str | None = None,
        inputs=None,
        outputs=None,
        command=None,
        image_uri: str | None = None,
        *,
        entry_point: str | None = None,
        script_dir: str | None = None,
        env: dict | None = None,
        identifier: str | None = None,
        version: str | None = None,
        provider: str | None = None,
    ):
        super().__init__(inputs, outputs, identifier, version, provider)
        entry = entry_file or entry_point
        source = source_dir or script_dir
        if not entry:
            raise PipelineError(
                "entry_file: give the script to run (entry_file=, or the manual's entry_point=)", "entry_file"
            )
        if command is not None:
            raise PipelineError(
                "command: a ScriptOperator runs its entry file (PAI's launch); use a "
                "FunctionOperator or a script for anything else",
                "command",
            )
        entry_path = Path(entry).expanduser()
        if source:
            folder = Path(source).expanduser().resolve()
            if not entry_path.is_absolute():
                entry_path = folder / entry_path
        else:
            folder = entry_path.resolve().parent
        entry_path = entry_path.resolve()
        if not entry_path.is_file():
            raise PipelineError(f"entry_file {entry!r} is not a file", "entry_file")
        if entry_path.parent != folder:
            raise PipelineError(
                f"entry_file {entry!r} must sit at the top level of source_dir {str(folder)!r}", "entry_file"
            )
        self.entry_file = entry_path.name
        self.source_dir = str(folder)
        self.image_uri = image_uri  # recorded, not used: steps run in this Python, not an image
        self.env = {str(k): str(v) for k, v in (env or {}).items()}
        self._archive: str | None = None
        self._sha = ""

    def prepare(self) -> None:
        """Pack the source folder (content-addressed: the same files give the same digest)."""
        data = _pack(Path(self.source_dir))
        self._sha = hashlib.sha256(data).hexdigest()
        self._archive = base64.b64encode(data).decode()

    def spec_to_dict(self) -> dict:
        if self._archive is None:
            self.prepare()
        spec = super().spec_to_dict()
        spec["script"] = {"entryFile": self.entry_file, "code": {"sha256": self._sha, "archive": self._archive}}
        if self.env:
            spec["script"]["envs"] = self.env
        return spec


def _signature_inputs(fn: Callable) -> list[PipelineVariable]:
    """Parameters from a function's signature: annotated scalars and maps; ``context`` is the runtime's."""
    found: list[PipelineVariable] = []
    named = {t.__name__: t for t in (str, int, float, bool, dict, list)}
    for p in inspect.signature(fn).parameters.values():
        if p.name == "context" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        # annotations may be strings (from __future__ import annotations)
        typ = named.get(p.annotation, p.annotation) if isinstance(p.annotation, str) else p.annotation
        typ = typ if typ in named.values() else str
        default = None if p.default is inspect.Parameter.empty else p.default
        found.append(PipelineParameter(p.name, typ, default))
    return found


def _pickle_function(cloudpickle, fn: Callable) -> bytes:
    """The function by value, with the module it was written in when that module is the user's own (a file
    beside the notebook, a test): the step's process may not be able to import it. Installed packages
    and pai_lab stay references."""
    import site
    import sys
    import sysconfig

    module = sys.modules.get(getattr(fn, "__module__", "") or "")
    path = str(getattr(module, "__file__", "") or "")
    installed = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["stdlib"], *site.getsitepackages()]
    own = (
        module is not None
        and path
        and module.__name__ != "__main__"
        and not module.__name__.startswith("pai_lab")
        and not any(path.startswith(p) for p in installed if p)
    )
    if own:
        cloudpickle.register_pickle_by_value(module)
    try:
        return cloudpickle.dumps(fn)
    finally:
        if own:
            cloudpickle.unregister_pickle_by_value(module)


class FunctionOperator(OperatorBase):
    """A plain Python function as an operator. It is pickled (cloudpickle) here and unpickled only in the
    step's own process on a Dask worker. It is called with its parameters typed, and ``context`` (the
    step's :class:`~pai_lab.pipelines.context.Context`) when it takes one; a dict it returns fills its
    output parameters."""

    def __init__(
        self,
        fn: Callable,
        inputs=None,
        outputs=None,
        identifier: str | None = None,
        version: str | None = None,
        provider: str | None = None,
    ):
        if not callable(fn):
            raise PipelineError("fn: a FunctionOperator wraps a function", "fn")
        if inputs is None:
            inputs = _signature_inputs(fn)
        ident = identifier or fn.__name__.replace("_", "-").strip("-") or None
        super().__init__(inputs, outputs, ident if ident and ident[0].isalpha() else None, version, provider)
        self.fn = fn
        self._pickle: str | None = None

    def spec_to_dict(self) -> dict:
        if self._pickle is None:
            import cloudpickle

            data = _pickle_function(cloudpickle, self.fn)
            if len(data) > MAX_CODE_BYTES:
                raise PipelineError(
                    f"fn: pickles to {len(data)} bytes; keep data out of the function's closure and "
                    "pass it as an artifact",
                    "fn",
                )
            self._pickle = base64.b64encode(data).decode()
        spec = super().spec_to_dict()
        spec["function"] = {"name": getattr(self.fn, "__qualname__", "fn"), "pickle": self._pickle}
        return spec

    def __call__(self, *args, **kwargs):  # still a plain function when called directly
        return self.fn(*args, **kwargs)


def component(
    fn: Callable | None = None, *, inputs=None, outputs=None, identifier: str | None = None, version: str | None = None
):
    """``@component`` or ``@component(outputs=[...])``: a function as a FunctionOperator."""

    def wrap(f: Callable) -> FunctionOperator:
        return FunctionOperator(f, inputs=inputs, outputs=outputs, identifier=identifier, version=version)

    return wrap(fn) if fn is not None else wrap


def value_of(arg: Any) -> Any:
    """An argument as the manifest carries it: an ArchivedArtifact from an earlier run gives its value."""
    return getattr(arg, "value", arg) if hasattr(arg, "producer_id") else arg


__all__ = ["FunctionOperator", "OperatorBase", "PipelineArtifact", "PipelineParameter", "ScriptOperator", "component"]
