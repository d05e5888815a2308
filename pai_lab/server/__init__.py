"""The REST layer: thin handlers over the area packages, one route table for all of them.

Every module in this package that defines ``router`` contributes its routes; an area adds a
module and nothing else changes.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections import defaultdict

from pai_lab.server.base import RouteHandler
from pai_lab.server.routing import API_PREFIX, Router, openapi_document, tornado_pattern  # noqa: F401

_INFRASTRUCTURE = {"base", "routing", "identity"}


def _discover_routers() -> list[Router]:
    found = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: (m.name != "system", m.name)):
        if info.name in _INFRASTRUCTURE:
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        router = getattr(module, "router", None)
        if isinstance(router, Router):
            found.append(router)
    return found


ROUTERS: list[Router] = _discover_routers()


def handlers(platform, base_url: str = "/") -> list[tuple]:
    by_path: dict[str, dict] = defaultdict(dict)
    for router in ROUTERS:
        for op in router.operations:
            if op.method in by_path[op.path]:
                raise RuntimeError(f"two routes for {op.method} {op.path}")
            by_path[op.path][op.method] = op
    base = base_url.rstrip("/")
    return [(base + tornado_pattern(path), RouteHandler, {"platform": platform, "operations": ops})
            for path, ops in by_path.items()]
