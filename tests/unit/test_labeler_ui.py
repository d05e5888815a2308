"""The labeler's front end (pai_lab/widgets/labeling/ui): its pure parts pass their node tests, its
sources pass the linters (prettier, eslint) and the type check, and the bundle the widget serves is built
from them."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

UI = Path(__file__).resolve().parents[2] / "pai_lab" / "widgets" / "labeling" / "ui"
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(NODE is None, reason="needs Node.js (the labeler's front end is JavaScript)")


def run(*cmd: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, FORCE_COLOR="0", NO_COLOR="1")
    return subprocess.run(cmd, cwd=UI, env=env, capture_output=True, text=True, timeout=300)


def test_the_pure_parts_pass_their_node_tests():
    done = run(NODE, "--test", "test/")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "# fail 0" in done.stdout


def test_the_sources_pass_the_type_check_and_the_bundle_is_built():
    tsc = UI / "node_modules" / "typescript" / "bin" / "tsc"
    if not tsc.exists():
        pytest.skip("the labeler's node modules are not installed (jlpm install in its ui folder)")
    checked = run(NODE, str(tsc), "-p", "tsconfig.json")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    bundle = UI.parent / "static" / "labeler.js"
    assert bundle.exists(), "the labeler's bundle is missing: pip install (or jlpm build in its ui folder)"
    newest_source = max(p.stat().st_mtime for p in (UI / "src").rglob("*.js"))
    assert bundle.stat().st_mtime >= newest_source, "the labeler's bundle is older than its sources: jlpm build"


def test_the_sources_pass_the_linters():
    # the same two checks as `jlpm lint:check` in the ui folder, called directly (no nested yarn starts)
    bin_dir = UI / "node_modules" / ".bin"
    if not (UI / "node_modules").is_dir():
        pytest.skip("the labeler's node modules are not installed (jlpm install in its ui folder)")
    for check in (
        [str(bin_dir / "prettier"), "--check", "**/*{.js,.mjs,.json,.md}"],
        [str(bin_dir / "eslint"), "."],
    ):
        tool = Path(check[0])
        assert tool.exists(), f"{tool.name} is not installed in the labeler's node modules: jlpm install in {UI}"
        done = run(*check)
        assert done.returncode == 0, (
            f"{tool.name} found problems; `jlpm lint` in the labeler's ui folder fixes most:\n"
            f"{done.stdout[-4000:]}{done.stderr[-2000:]}"
        )
