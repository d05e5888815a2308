"""``client.resource_groups``: the Dask clusters jobs run on, and the operator's verbs on them.

>>> client.resource_groups                      # a table: workers, cores, memory, GPUs, ranks
>>> client.resource_groups.add("gpu-pool", "tcp://10.0.0.5:8786")   # the server's operator
>>> ws.set_resource_group("gpu-pool")           # a workspace's Owner or Administrator
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

from pai_lab.resources.schemas import ResourceGroup

if TYPE_CHECKING:
    from pai_lab.client import PaiClient

COLUMNS = ["name", "source", "status", "scheduler_address", "workers", "cores", "memory", "gpus", "ranks"]


class ResourceGroups:
    def __init__(self, client: PaiClient):
        self._client = client

    def list(self) -> list[ResourceGroup]:
        return [ResourceGroup.model_validate(g) for g in self._client.http.get("/resource-groups")]

    def get(self, name: str) -> ResourceGroup:
        return ResourceGroup.model_validate(self._client.http.get(f"/resource-groups/{name}"))

    def add(self, name: str, scheduler_address: str) -> ResourceGroup:
        body = {"name": name, "scheduler_address": scheduler_address}
        return ResourceGroup.model_validate(self._client.http.post("/resource-groups", body))

    def remove(self, name: str) -> None:
        self._client.http.delete(f"/resource-groups/{name}")

    def __iter__(self):
        return iter(self.list())

    def __getitem__(self, name: str) -> ResourceGroup:
        return self.get(name)

    def _repr_html_(self) -> str:
        head = "".join(f"<th style='text-align:left'>{c}</th>" for c in COLUMNS)
        rows = "".join(
            "<tr>"
            + "".join(
                f"<td>{escape(str(v))}</td>"
                for v in (
                    g.name,
                    g.source,
                    g.status,
                    g.scheduler_address,
                    len(g.workers),
                    g.cores,
                    f"{g.memory // 2**20} MiB" if g.memory else "unlimited",
                    g.gpus,
                    len(g.ranks),
                )
            )
            + "</tr>"
            for g in self.list()
        )
        return f"<table class='pai-lab-resource-groups'><tr>{head}</tr>{rows}</table>"
