"""An instance's log leaves out TensorFlow's C++ start-up lines (written by absl before TensorFlow
reads TF_CPP_MIN_LOG_LEVEL) and keeps everything else; TF_CPP_MIN_LOG_LEVEL=0 keeps them all."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

NOISE = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796520226.704582   10593 port.cc:153] oneDNN custom operations are on. You may see slightly "
    "different numerical results",
    "I0000 00:00:1796520226.706802   10593 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU "
    "will not be used.",
    "E0000 00:00:1796520229.742553   10593 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: "
    "Failed call to cuInit: UNKNOWN ERROR (303)",
    "To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild TensorFlow with the "
    "appropriate compiler flags.",
]
KEPT = [
    "E0000 00:00:1796520229.800000   10593 saved_model_loader.cc:12] a real error of the model",
    "Traceback (most recent call last):",
    "ValueError: the model's own complaint",
]

SCRIPT = textwrap.dedent("""
    import os, sys
    from pai_lab.serving import instance

    instance._quiet_native_logs()
    lines = sys.argv[1:]
    for line in lines[:3]:
        os.write(2, (line + "\\n").encode())          # as native code writes: straight to fd 2
    for line in lines[3:]:
        print(line, file=sys.stderr)                # as Python writes (tracebacks)
    os.write(2, b"no newline at the end")
    instance._flush_logs()
""")


def _run(level: str, lines: list[str]) -> str:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=level)
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, *lines], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    return done.stderr


def test_tensorflow_start_up_lines_are_dropped_and_the_rest_kept():
    lines = [NOISE[0], KEPT[0], NOISE[1], NOISE[2], KEPT[1], NOISE[3], NOISE[4], KEPT[2]]
    assert _run("2", lines).splitlines() == [KEPT[0], KEPT[1], KEPT[2], "no newline at the end"]


def test_asking_for_tensorflow_logs_keeps_every_line():
    lines = [NOISE[0], KEPT[0], NOISE[3]]
    assert _run("0", lines).splitlines() == [*lines, "no newline at the end"]
