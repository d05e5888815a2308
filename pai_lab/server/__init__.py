"""The REST layer: thin handlers over the area packages, one route table for all of them."""

from __future__ import annotations

from collections import defaultdict

from pai_lab.server import system, workspaces
from pai_lab.server.base import RouteHandler
from pai_lab.server.routing import API_PREFIX, Router, openapi_document, tornado_pattern  # noqa: F401

ROUTERS: list[Router] = [system.router, workspaces.router]


def _optional_routers() -> list[Router]:
    # Areas add their routers here as they are built; a missing area is not an error.
    found = []
    for area in ("datasets", "labeling", "training", "serving"):
        try:
            module = __import__(f"pai_lab.server.{area}", fromlist=["router"])
        except ModuleNotFoundError as exc:
            if exc.name != f"pai_lab.server.{area}":
                raise
            continue
        found.append(module.router)
    return found


ROUTERS.extend(_optional_routers())


def handlers(platform, base_url: str = "/") -> list[tuple]:
    by_path: dict[str, dict] = defaultdict(dict)
    for router in ROUTERS:
        for op in router.operations:
            by_path[op.path][op.method] = op
    base = base_url.rstrip("/")
    return [(base + tornado_pattern(path), RouteHandler, {"platform": platform, "operations": ops})
            for path, ops in by_path.items()]
