"""docs/pai_tf.md's EmbeddingVariable path (Keras Hashing + Embedding) runs as the page shows it."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.tf


def test_the_documented_hashing_embedding_snippet_trains_on_raw_keys(tmp_path):
    page = (ROOT / "docs" / "pai_tf.md").read_text()
    section = page.split("## EmbeddingVariable", 1)[1]
    snippet = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    script = tmp_path / "snippet.py"
    script.write_text(snippet)
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=240,
        env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # a key the model never saw still reads a row: one prediction per key
    assert done.stdout.strip().splitlines()[-1] == "(4, 1)"
