"""The wiring is explicit: a module missing from an installation (a packaging bug) stops the program with
an ImportError that names it, instead of the feature quietly disappearing from the CLI, the API or the
store."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

# Each list in the code, the module taken away, and what a user then runs.
CASES = {
    "cli command": ("pai_lab.cli.eascmd", "from pai_lab.cli import main; main(['--help'])"),
    "dlc kind": ("pai_lab.cli.dlc_jobs", "from pai_lab.cli import main; main(['dlc', 'submit', '--help'])"),
    "REST router": ("pai_lab.server.training", "import pai_lab.server"),
    "area start-up": ("pai_lab.serving.lifecycle", "import pai_lab.platform"),
    "store table": (
        "pai_lab.serving.tables",
        "import tempfile; from pai_lab.platform import Platform; Platform(tempfile.mkdtemp()).start()",
    ),
    "labeling format": (
        "pai_lab.labeling.formats.yolo",
        "from pai_lab.labeling import formats; formats.exporter('coco')",
    ),
    "client area": (
        "pai_lab.client.services",
        "from pai_lab.client import PaiClient; PaiClient('http://127.0.0.1:9', 't').workspace().services",
    ),
    "workspaces service": ("pai_lab.workspaces.service", "from pai_lab.workspaces import authorize"),
}


def run_without(module: str, code: str) -> subprocess.CompletedProcess:
    # None in sys.modules is how Python spells "this module cannot be imported": the same
    # ModuleNotFoundError (with .name == module) that a file left out of a wheel gives.
    script = textwrap.dedent(f"""
        import sys
        sys.modules[{module!r}] = None
        {code}
        print("ran without {module}")
    """)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("what", list(CASES))
def test_a_missing_module_fails_loudly(what):
    module, code = CASES[what]
    done = run_without(module, code)
    assert done.returncode != 0, f"{what}: ran without {module}:\n{done.stdout}"
    assert "ModuleNotFoundError" in done.stderr and module in done.stderr, done.stderr
    assert "API yet" not in done.stderr


def test_every_area_is_wired():
    """What the lists hold: every CLI group, REST area, export format and client area a user reaches."""
    from pai_lab.cli import build_parser
    from pai_lab.labeling import formats
    from pai_lab.server import ROUTERS

    commands = build_parser()._subparsers._group_actions[0].choices
    assert {"workspace", "member", "roles", "oplog", "server", "dataset", "label", "dlc", "eascmd"} <= set(commands)
    dlc = commands["dlc"]._subparsers._group_actions[0].choices
    assert {"data_source", "code_source"} <= set(dlc["create"]._subparsers._group_actions[0].choices)
    assert "tfjob" in dlc["submit"]._subparsers._group_actions[0].choices
    parts = [op.path.split("/") for router in ROUTERS for op in router.operations]
    tags = {p[3] if p[1] == "workspaces" and len(p) > 3 else p[1] for p in parts}
    assert {"datasets", "labeling", "jobs", "services", "members", "me", "roles"} <= tags
    assert set(formats.EXPORTERS) == {"itag", "easyvision", "label-studio", "coco", "yolo", "conll", "tfrecord"}
    assert set(formats.IMPORTERS) == {"itag", "label-studio", "coco", "easyvision"}
