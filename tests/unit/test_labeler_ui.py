"""The labeler's front end (pai_lab/widgets/labeling/ui): its pure parts pass their node tests, its
sources pass the type check, and the bundle the widget serves is built from them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

UI = Path(__file__).resolve().parents[2] / "pai_lab" / "widgets" / "labeling" / "ui"
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(NODE is None, reason="needs Node.js (the labeler's front end is JavaScript)")


def run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=UI, capture_output=True, text=True, timeout=300)


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
