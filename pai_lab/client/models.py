"""``ws.models``: SavedModels registered by jobs (or by hand), by name and version."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import PrivateAttr

from pai_lab.client import table
from pai_lab.training.schemas import Model

if TYPE_CHECKING:  # pandas loads on first use: the CLI starts faster without it
    import pandas as pd


class RegisteredModel(Model):
    """A model version as the client holds it: its record, and ``lineage()``."""

    _ws: Any = PrivateAttr(None)

    def lineage(self):
        """Which pipeline run, step and inputs made this version (empty when no run made it)."""
        from pai_lab.client.lineage import fetch

        return fetch(self._ws, "model", self.name, self.version)


class Models:
    def __init__(self, ws):
        self._ws = ws

    def _model(self, data) -> RegisteredModel:
        model = RegisteredModel.model_validate(data)
        model._ws = self._ws
        return model

    def list(self, name: str | None = None) -> list[Model]:
        return [self._model(m) for m in self._ws._get("/models", params={"name": name} if name else None)]

    def get(self, ref: str) -> RegisteredModel:
        """``name:version``, ``name`` (the latest version) or the id of the job that trained it."""
        return self._model(self._ws._get(f"/models/{ref}"))

    def register(self, name: str, path: str, description: str = "", job_id: str | None = None) -> RegisteredModel:
        body = {"name": name, "path": path, "description": description, "job_id": job_id}
        return self._model(self._ws._post("/models", body))

    def lineage(self, name: str, version: int | None = None):
        """The lineage of model ``name``'s versions (or of one): the runs, steps and inputs that made them."""
        from pai_lab.client.lineage import fetch

        return fetch(self._ws, "model", name, version)

    def delete(self, ref: str) -> None:
        self._ws._delete(f"/models/{ref}")

    def to_pandas(self) -> pd.DataFrame:
        return table(self.list(), ["name", "version", "path", "job_id", "created_by", "created_at"])

    def __iter__(self):
        return iter(self.list())

    def __len__(self) -> int:
        return len(self.list())

    def __getitem__(self, ref: str) -> Model:
        return self.get(ref)

    def _repr_html_(self) -> str:
        return self.to_pandas().to_html(index=False)
