"""What pip installs: every module pai_lab imports comes with `pip install .`, and the tf extra holds one TensorFlow.

The third-party imports are read from the source (at any depth, so imports inside functions count), and
each must be provided by a distribution that the declared dependencies bring, following the installed
distributions' own requirements. The CI step `plain_install` (.ci/run) proves the same on a fresh venv.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
TF_SIDE = {"tensorflow", "keras", "tf_keras"}  # imported only where TensorFlow work runs (the tf extra)
# imported under `except ImportError` (used when present), or by a serving processor of an extra
# (onnx, pmml, torch), a converter (video) or a cluster kind (gateway) that says which extra to install
# when it is missing
OPTIONAL = {"uvloop", "graphviz", "onnxruntime", "pypmml", "torch", "cv2", "dask_gateway"}
TF_DISTRIBUTIONS = {"tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tensorflow-intel", "tensorflow-macos"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(requirements: list[str]) -> set[str]:
    """The distributions these requirements bring, through the installed distributions' metadata."""
    seen: set[str] = set()
    todo = [(Requirement(r), "") for r in requirements]
    done_extras: set[tuple[str, str]] = set()
    while todo:
        req, extra = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": extra}):
            continue
        name = canonical(req.name)
        wanted = ["", *sorted(req.extras)]
        if all((name, e) in done_extras for e in wanted):
            continue
        seen.add(name)
        try:
            dist = md.distribution(req.name)
        except md.PackageNotFoundError:
            continue  # not installed here (another platform's); nothing further to follow
        for e in wanted:
            if (name, e) not in done_extras:
                done_extras.add((name, e))
                todo.extend((Requirement(r), e) for r in dist.requires or [])
    return seen


def third_party_imports() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in (ROOT / "pai_lab").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "pai_lab":
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_imported_module_comes_with_the_plain_install():
    plain = closure(PYPROJECT["project"]["dependencies"])
    with_tf = plain | closure(PYPROJECT["project"]["optional-dependencies"]["tf"])
    providers = md.packages_distributions()
    imports = third_party_imports()
    assert {"PIL", "numpy", "google"} <= set(imports)  # the scan sees imports inside functions too
    missing = {}
    for module, files in sorted(imports.items()):
        if module in OPTIONAL:
            continue
        needed_in = with_tf if module in TF_SIDE else plain
        dists = {canonical(d) for d in providers.get(module, [])}
        if not dists & needed_in:
            missing[module] = sorted(files)[:3]
    assert not missing, f"imported but not brought by pyproject's dependencies: {missing}"


def test_scikit_learn_is_not_needed_at_run_time():
    assert "scikit-learn" not in closure(PYPROJECT["project"]["dependencies"])
    assert "sklearn" not in third_party_imports()


@pytest.mark.parametrize("extra", ["tf", "gpu"])
def test_the_tensorflow_extras_install_one_tensorflow(extra):
    declared = PYPROJECT["project"]["optional-dependencies"][extra]
    brought = closure(declared) & TF_DISTRIBUTIONS
    # tf-keras's own metadata requires `tensorflow`, so any other TensorFlow beside it would be a second copy
    assert brought == {"tensorflow"}, brought
    assert any(canonical(Requirement(r).name) == "tf-keras" for r in declared)
    if extra == "gpu":
        assert "and-cuda" in next(Requirement(r).extras for r in declared if Requirement(r).name == "tensorflow")
