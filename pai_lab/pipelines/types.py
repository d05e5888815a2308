"""Inputs and outputs of operators and pipelines: PAI's PipelineParameter and PipelineArtifact.

A variable is declared on an operator (its signature), on a pipeline (a free input the run's
arguments fill) or is a step's output that later steps take. Its manifest form is PAI's
(``{name, type, value, desc}`` for a parameter, ``{name, metadata, required}`` for an artifact).
"""

from __future__ import annotations

import re
import warnings
from enum import Enum
from typing import Any

from pai_lab.errors import BadInput

# A step, input or output name: what the manifest's references ({{pipelines.<step>...}}) can spell.
NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
NAME_RULE = "1-64 letters, digits, '_' or '-', starting with a letter"


class PipelineError(BadInput, ValueError):
    """A pipeline, step or argument that cannot run; names the step and the field (a ValueError, as in PAI)."""


class ParameterType(str, Enum):
    String = "String"
    Int = "Int"
    Double = "Double"
    Bool = "Bool"
    Map = "Map"
    Array = "Array"


_TYPE_NAMES = {
    str: ParameterType.String,
    "str": ParameterType.String,
    "string": ParameterType.String,
    int: ParameterType.Int,
    "int": ParameterType.Int,
    "integer": ParameterType.Int,
    "long": ParameterType.Int,
    float: ParameterType.Double,
    "float": ParameterType.Double,
    "double": ParameterType.Double,
    bool: ParameterType.Bool,
    "bool": ParameterType.Bool,
    "boolean": ParameterType.Bool,
    dict: ParameterType.Map,
    "dict": ParameterType.Map,
    "map": ParameterType.Map,
    list: ParameterType.Array,
    "list": ParameterType.Array,
    "array": ParameterType.Array,
}


def parameter_type(typ: Any, field: str = "typ") -> ParameterType:
    if isinstance(typ, ParameterType):
        return typ
    key = typ.lower() if isinstance(typ, str) else typ
    try:
        found = _TYPE_NAMES.get(key)
    except TypeError:  # an unhashable value from a manifest
        found = None
    if found is None:
        raise PipelineError(
            f"{field}: unknown parameter type {typ!r}; use one of "
            f"{', '.join(t.value for t in ParameterType)} (or str, int, float, bool, dict, list)",
            field,
        )
    return found


class DataType(str, Enum):
    DataSet = "DataSet"
    Model = "Model"
    ModelEvaluation = "ModelEvaluation"
    Any = "Any"


class LocationType(str, Enum):
    # PAI's cloud locations, kept so manifests from the manual still read, and the local ones
    MaxComputeTable = "MaxComputeTable"
    MaxComputeVolume = "MaxComputeVolume"
    MaxComputeOfflineModel = "MaxComputeOfflineModel"
    OSS = "OSS"
    FileSystem = "FileSystem"
    Dataset = "Dataset"
    Model = "Model"


class LocationArtifactMetadata:
    """An artifact's type: what it holds (DataType) and where it lives (LocationType)."""

    def __init__(
        self,
        data_type: DataType | str = DataType.Any,
        location_type: LocationType | str | None = None,
        type_attributes: dict | None = None,
    ):
        try:
            self.data_type = DataType(data_type)
            self.location_type = LocationType(location_type) if location_type else None
        except ValueError as exc:
            raise PipelineError(
                f"metadata: {exc}; data types are {', '.join(d.value for d in DataType)}", "metadata"
            ) from None
        self.type_attributes = dict(type_attributes or {})

    def to_dict(self) -> dict:
        attrs = dict(self.type_attributes)
        if self.location_type:
            attrs["locationType"] = self.location_type.value
        return {"type": {self.data_type.value: attrs}}

    @classmethod
    def from_dict(cls, data: Any, field: str = "metadata") -> LocationArtifactMetadata:
        if data is None:
            return cls()
        if isinstance(data, LocationArtifactMetadata):
            return data
        kind = data.get("type") if isinstance(data, dict) else None
        if not isinstance(kind, dict) or len(kind) != 1:
            raise PipelineError(f"{field}: expected {{type: {{<DataType>: {{locationType: ...}}}}}}", field)
        ((data_type, attrs),) = kind.items()
        if not isinstance(attrs, (dict, type(None))) or not isinstance(data_type, str):
            raise PipelineError(f"{field}: expected {{type: {{<DataType>: {{locationType: ...}}}}}}", field)
        attrs = dict(attrs or {})
        location = attrs.pop("locationType", None)
        try:
            return cls(data_type, location, attrs)
        except PipelineError as exc:
            raise PipelineError(f"{field}: {exc.message}", field) from None

    def compatible_with(self, other: LocationArtifactMetadata) -> bool:
        """PAI's rule: an artifact wires to another when their types are equal, or either is Any."""
        if DataType.Any in (self.data_type, other.data_type):
            return True
        return self.data_type == other.data_type

    def __eq__(self, other) -> bool:
        return isinstance(other, LocationArtifactMetadata) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        where = f", {self.location_type.value}" if self.location_type else ""
        return f"<Metadata {self.data_type.value}{where}>"


class MetadataBuilder:
    """Ready-made artifact types. The MaxCompute/OSS ones of the manual map to local types."""

    @staticmethod
    def local_dataset() -> LocationArtifactMetadata:
        return LocationArtifactMetadata(DataType.DataSet, LocationType.Dataset)

    @staticmethod
    def fs_dataset() -> LocationArtifactMetadata:
        return LocationArtifactMetadata(DataType.DataSet, LocationType.FileSystem)

    @staticmethod
    def local_model() -> LocationArtifactMetadata:
        return LocationArtifactMetadata(DataType.Model, LocationType.FileSystem)

    @staticmethod
    def model_evaluation() -> LocationArtifactMetadata:
        return LocationArtifactMetadata(DataType.ModelEvaluation, LocationType.FileSystem)

    @staticmethod
    def any() -> LocationArtifactMetadata:
        return LocationArtifactMetadata(DataType.Any)

    @staticmethod
    def maxc_table() -> LocationArtifactMetadata:
        warnings.warn(
            "MetadataBuilder.maxc_table(): there is no MaxCompute here; a local data set is used", stacklevel=2
        )
        return MetadataBuilder.fs_dataset()

    @staticmethod
    def oss_dataset() -> LocationArtifactMetadata:
        warnings.warn(
            "MetadataBuilder.oss_dataset(): there is no OSS here; a file-system data set is used", stacklevel=2
        )
        return MetadataBuilder.fs_dataset()

    @staticmethod
    def maxc_offlinemodel() -> LocationArtifactMetadata:
        warnings.warn(
            "MetadataBuilder.maxc_offlinemodel(): there is no MaxCompute here; a local model is used", stacklevel=2
        )
        return MetadataBuilder.local_model()


def check_name(name: Any, field: str) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise PipelineError(f"{field}: name {name!r} is not allowed; use {NAME_RULE}", field)
    return name


class PipelineVariable:
    """A named input or output. ``parent`` is the step that owns it (None: a pipeline's free input)."""

    kind = ""  # "parameters" | "artifacts"

    def __init__(self, name: str, desc: str | None = None, io_type: str = "inputs", from_=None, parent=None):
        self.name = check_name(name, "name")
        self.desc = desc
        self.io_type = io_type
        self.from_ = from_
        self.parent = parent

    def copy(self, **changes) -> PipelineVariable:
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.__dict__.update(changes)
        return clone

    @property
    def ref(self) -> str:
        """The manifest's reference to this variable, e.g. ``{{pipelines.split.outputs.artifacts.t}}``."""
        if self.parent is None:
            return "{{inputs.%s.%s}}" % (self.kind, self.name)
        return "{{pipelines.%s.%s.%s.%s}}" % (self.parent.name, self.io_type, self.kind, self.name)

    def __repr__(self) -> str:
        owner = f"{self.parent.name}." if self.parent is not None else ""
        return f"<{type(self).__name__} {owner}{self.io_type}.{self.name}>"


class PipelineParameter(PipelineVariable):
    kind = "parameters"

    def __init__(
        self,
        name: str,
        typ: Any = str,
        default: Any = None,
        desc: str | None = None,
        io_type: str = "inputs",
        from_=None,
        parent=None,
        feasible: dict | None = None,
    ):
        super().__init__(name, desc, io_type, from_, parent)
        self.typ = parameter_type(typ, f"{name}.typ")
        self.default = default
        self.feasible = feasible

    @property
    def required(self) -> bool:
        return self.default is None

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"name": self.name, "type": self.typ.value}
        if self.default is not None:
            out["value"] = self.default
        if self.desc:
            out["desc"] = self.desc
        if self.feasible:
            out["feasible"] = self.feasible
        return out

    @classmethod
    def from_dict(cls, data: dict, io_type: str = "inputs") -> PipelineParameter:
        return cls(
            data["name"],
            data.get("type", "String"),
            data.get("value"),
            data.get("desc"),
            io_type,
            feasible=data.get("feasible"),
        )


class PipelineArtifact(PipelineVariable):
    kind = "artifacts"

    def __init__(
        self,
        name: str,
        metadata: LocationArtifactMetadata | dict | None = None,
        path: str | None = None,
        desc: str | None = None,
        io_type: str = "inputs",
        value: Any = None,
        from_=None,
        required: bool = False,
        repeated: bool = False,
        parent=None,
    ):
        super().__init__(name, desc, io_type, from_, parent)
        self.metadata = LocationArtifactMetadata.from_dict(metadata, f"{name}.metadata")
        self.path = path
        self.value = value
        self.required = required
        if repeated:
            raise PipelineError(
                f"{name}.repeated: repeated artifacts are not supported yet; declare one artifact per input",
                f"{name}.repeated",
            )

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"name": self.name, "metadata": self.metadata.to_dict()}
        if self.required:
            out["required"] = True
        if self.value is not None:
            out["value"] = self.value
        if self.desc:
            out["desc"] = self.desc
        return out

    @classmethod
    def from_dict(cls, data: dict, io_type: str = "inputs") -> PipelineArtifact:
        return cls(
            data["name"],
            data.get("metadata"),
            desc=data.get("desc"),
            io_type=io_type,
            value=data.get("value"),
            required=bool(data.get("required", False)),
        )


class VariablesSpec:
    """An operator's or step's inputs or outputs: indexable by position, name or slice (PAI's InputsSpec)."""

    def __init__(self, variables: list[PipelineVariable] | None = None):
        variables = list(variables or [])
        # PAI's order: parameters, then artifacts
        self._items = [v for v in variables if v.kind == "parameters"] + [v for v in variables if v.kind == "artifacts"]
        seen: set[str] = set()
        for v in self._items:
            if v.name in seen:
                raise PipelineError(f"{v.name}: two inputs or outputs share this name; rename one", v.name)
            seen.add(v.name)

    @property
    def parameters(self) -> list[PipelineParameter]:
        return [v for v in self._items if v.kind == "parameters"]  # type: ignore[misc]

    @property
    def artifacts(self) -> list[PipelineArtifact]:
        return [v for v in self._items if v.kind == "artifacts"]  # type: ignore[misc]

    def __getitem__(self, key):
        if isinstance(key, str):
            for v in self._items:
                if v.name == key:
                    return v
            raise KeyError(f"{key!r}: not one of {', '.join(v.name for v in self._items) or 'none'}")
        return self._items[key]

    def __contains__(self, name: str) -> bool:
        return any(v.name == name for v in self._items)

    def __iter__(self):
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def to_dict(self) -> dict:
        return {
            "parameters": [p.to_dict() for p in self.parameters],
            "artifacts": [a.to_dict() for a in self.artifacts],
        }

    @classmethod
    def from_dict(cls, data: dict | None, io_type: str) -> VariablesSpec:
        data = data or {}
        return cls(
            [PipelineParameter.from_dict(p, io_type) for p in data.get("parameters") or []]
            + [PipelineArtifact.from_dict(a, io_type) for a in data.get("artifacts") or []]
        )

    def __repr__(self) -> str:
        return "[" + ", ".join(repr(v) for v in self._items) + "]"
