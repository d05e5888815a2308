"""The sidebar's cluster line says what the control plane's ClusterInfo says, and that is this machine."""

from __future__ import annotations

import psutil
import pytest

from tests.fixtures.browser import open_lab, open_sidebar

pytestmark = pytest.mark.e2e


def _bytes(n: float) -> str:  # as the sidebar writes sizes (formatBytes)
    units = ["B", "KiB", "MiB", "GiB", "TiB"]
    unit = 0
    while n >= 1024 and unit < len(units) - 1:
        n /= 1024
        unit += 1
    return f"{int(n)} B" if unit == 0 else f"{n:.1f} {units[unit]}"


def test_cluster_line_shows_the_cluster_info_figures(lab_server, page):
    answer = lab_server.api("GET", "/cluster")
    assert answer.status_code == 200, answer.text
    workers = answer.json()["workers"]
    cores = sum(w["cores"] for w in workers)
    memory = sum(w["memory"] for w in workers)
    # the embedded LocalCluster splits this machine between its workers: never more than it has
    assert 1 <= cores <= psutil.cpu_count() and 0 < memory <= psutil.virtual_memory().total

    open_lab(page, lab_server)
    sidebar = open_sidebar(page)
    # the line once the cluster has answered (before that the same place says "Loading…")
    line = sidebar.locator('[data-cluster=""] .pai-muted', has_text=" workers · ").first
    line.wait_for(timeout=60_000)
    assert line.inner_text().strip() == f"{len(workers)} workers · {cores} cores · {_bytes(memory)}"
