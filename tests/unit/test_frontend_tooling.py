"""The sidebar's own checks, run from pytest so the README's test command runs them too.

Lint (stylelint, prettier, eslint with typescript-eslint), the front-end unit tests (node's test runner
through tsx), and the response types generated from the server's OpenAPI document, which must match
what the server describes today. They need the sidebar's node_modules (`jlpm install` in labextension/,
which `pip install -e .` runs); without them these tests are skipped and say so.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

LABEXTENSION = Path(__file__).resolve().parents[2] / "labextension"
BIN = LABEXTENSION / "node_modules" / ".bin"
GENERATED = LABEXTENSION / "src" / "api.generated.ts"

pytestmark = pytest.mark.skipif(
    not BIN.is_dir(),
    reason="labextension/node_modules is absent: run `jlpm install` in labextension/ (pip install -e . does)",
)


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    node = shutil.which("node")
    assert node, "node is not on the PATH: the sidebar's checks need Node.js ^20.19 or >=22.12"
    env = dict(os.environ, FORCE_COLOR="0", NO_COLOR="1")
    return subprocess.run(args, cwd=LABEXTENSION, env=env, capture_output=True, text=True, timeout=timeout)


def test_styles_and_typescript_pass_the_linters():
    # the same three checks as `jlpm lint:check`, called directly (no nested package-manager starts)
    for check in (
        [str(BIN / "stylelint"), "style/**/*.css"],
        [str(BIN / "prettier"), "--check", "**/*{.ts,.tsx,.js,.mjs,.jsx,.css,.json,.md}"],
        [str(BIN / "eslint"), "."],
    ):
        done = run(*check)
        assert done.returncode == 0, (
            f"{Path(check[0]).name} found problems; `jlpm lint` in labextension/ "
            f"fixes most:\n{done.stdout[-4000:]}{done.stderr[-2000:]}"
        )


def test_front_end_unit_tests_pass():
    tests = sorted(str(p.relative_to(LABEXTENSION)) for p in (LABEXTENSION / "test").glob("*.test.ts"))
    assert tests, "no front-end unit tests found in labextension/test/"
    done = run(str(BIN / "tsx"), "--test", *tests)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    assert "# fail 0" in output and "# pass 0" not in output, output[-2000:]


def test_api_types_are_generated_from_the_current_openapi_document(tmp_path):
    from pai_lab import __version__
    from pai_lab.server import ROUTERS, openapi_document

    document = tmp_path / "openapi.json"
    document.write_text(json.dumps(openapi_document(ROUTERS, __version__), indent=1, sort_keys=True) + "\n")
    fresh = tmp_path / "api.generated.ts"
    done = run(str(BIN / "openapi-typescript"), str(document), "--output", str(fresh))
    assert done.returncode == 0, done.stdout + done.stderr
    assert fresh.read_text() == GENERATED.read_text(), (
        "labextension/src/api.generated.ts no longer matches the server's OpenAPI document: run "
        "`jlpm api:generate` in labextension/, then fix what `jlpm build` reports in src/api.ts and the sections"
    )
