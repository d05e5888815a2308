"""The REST layer: thin handlers over the area packages, one route table for all of them.

Each area's module defines a ``router``; :data:`ROUTERS` lists them, so a new area's module is
imported and added there (the OpenAPI document and the route table both come from this list).
"""

from __future__ import annotations

from collections import defaultdict

from pai_lab.server import (
    datasets,
    labeling,
    labeling_media,
    model_store,
    pipeline_outputs,
    pipelines,
    resources,
    serving,
    serving_autoscale,
    system,
    training,
    workspaces,
)
from pai_lab.server.base import RouteHandler
from pai_lab.server.routing import API_PREFIX, Router, openapi_document, tornado_pattern  # noqa: F401

ROUTERS: list[Router] = [
    system.router,
    datasets.router,
    labeling.router,
    labeling_media.router,
    serving.router,
    serving_autoscale.router,
    model_store.router,
    training.router,
    workspaces.router,
    pipelines.router,
    pipeline_outputs.router,
    resources.router,
]


def handlers(platform, base_url: str = "/") -> list[tuple]:
    by_path: dict[str, dict] = defaultdict(dict)
    for router in ROUTERS:
        for op in router.operations:
            if op.method in by_path[op.path]:
                raise RuntimeError(f"two routes for {op.method} {op.path}")
            by_path[op.path][op.method] = op
    base = base_url.rstrip("/")
    return [
        (base + tornado_pattern(path), RouteHandler, {"platform": platform, "operations": ops})
        for path, ops in by_path.items()
    ]
