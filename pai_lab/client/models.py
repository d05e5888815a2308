"""``ws.models``: SavedModels registered by jobs (or by hand), by name and version."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pai_lab.client import table
from pai_lab.training.schemas import Model

if TYPE_CHECKING:  # pandas loads on first use: the CLI starts faster without it
    import pandas as pd


class Models:
    def __init__(self, ws):
        self._ws = ws

    def list(self, name: str | None = None) -> list[Model]:
        return [Model.model_validate(m) for m in self._ws._get("/models", params={"name": name} if name else None)]

    def get(self, ref: str) -> Model:
        """``name:version``, ``name`` (the latest version) or the id of the job that trained it."""
        return Model.model_validate(self._ws._get(f"/models/{ref}"))

    def register(self, name: str, path: str, description: str = "", job_id: str | None = None) -> Model:
        body = {"name": name, "path": path, "description": description, "job_id": job_id}
        return Model.model_validate(self._ws._post("/models", body))

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
