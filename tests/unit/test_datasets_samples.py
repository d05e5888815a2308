"""The bundled samples: digits built from the shipped data (no scikit-learn), items listed shuffled."""

from __future__ import annotations

import collections
import itertools
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pai_lab.datasets import samples


def labels_of(lines) -> list[str]:
    out = []
    for line in lines:
        data = line[samples.LABEL_KEY]["results"][0]["data"]
        out.append(data if isinstance(data, str) else ",".join(sorted(s["labels"]["单选"] for s in data)))
    return out


@pytest.fixture(scope="module")
def state(tmp_path_factory):
    return tmp_path_factory.mktemp("state")  # samples are built here once, on first use


def test_digits_are_the_shipped_data_as_pngs(state):
    data_type, _description, lines, folder = samples.materialize("digits", state)
    lines = list(lines)
    images, targets = samples.digits_arrays()
    assert data_type == "image" and len(lines) == len(targets) == samples.SAMPLE_COUNTS["digits"] == 1797
    assert collections.Counter(labels_of(lines)) == collections.Counter(str(t) for t in targets)
    for line in lines[:50]:  # each PNG is its row of the data, upscaled 4x, dark ink on white
        path = Path(line["data"]["source"])
        row = int(path.stem)  # files are named by their row in the data
        assert path.parent.parent == folder
        assert path.parent.name == str(targets[row]) == labels_of([line])[0]
        pixels = np.asarray(Image.open(path))
        assert pixels.shape == (32, 32)
        expected = (255 - images[row] * 255 / 16).astype("uint8").repeat(4, 0).repeat(4, 1)
        assert np.array_equal(pixels, expected)


def test_digits_match_scikit_learns_copy():
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    images, targets = samples.digits_arrays()
    theirs = sklearn_datasets.load_digits()
    assert np.array_equal(images, theirs.images) and np.array_equal(targets, theirs.target)


def test_manifests_are_shuffled_and_stable(state):
    for name in samples.sample_names():
        first = labels_of(list(samples.materialize(name, state)[2])[:20])
        again = labels_of(list(samples.materialize(name, state)[2])[:20])
        assert first == again  # a fixed seed: the same order on every registration
        # folder order gave twenty zeros; shuffled, the first package holds most classes, in short runs
        assert len(set(first)) >= {"digits": 8, "reviews": 2, "shapes": 5}[name], (name, first)
        assert max(len(list(run)) for _label, run in itertools.groupby(first)) < 6, (name, first)


def test_digits_build_without_scikit_learn(tmp_path):
    script = textwrap.dedent(f"""
        import sys
        sys.modules["sklearn"] = None  # any import of scikit-learn fails
        from pathlib import Path
        from pai_lab.datasets import samples
        _type, _desc, lines, folder = samples.materialize("digits", Path({str(tmp_path)!r}))
        print(sum(1 for _ in lines), len(list(folder.glob("*/*.png"))))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1797", "1797"]
