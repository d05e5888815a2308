"""Displays escape what users wrote: one member's name, description, label or log line is text in
another member's notebook, never live HTML."""

import pytest

SCRIPT = "<script>alert('pwned')</script>"
ESCAPED = "&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt;"


@pytest.fixture
def workspace(live_server, unique_name):
    client = live_server.client()
    ws = client.create_workspace(unique_name("disp"), description=f"team {SCRIPT}")
    ws.members.add("dev", ["AlgorithmDeveloper"])
    ws.members.add("labeladmin", ["LabelingAdmin"])
    return ws


def assert_escaped(html: str) -> None:
    assert "<script" not in html.lower(), html
    assert ESCAPED in html or "&lt;script&gt;" in html, html


def test_a_workspace_description_is_escaped(workspace):
    assert_escaped(workspace._repr_html_())


def test_a_tasks_description_and_labels_are_escaped(live_server, workspace):
    ws = live_server.client("labeladmin").workspace(workspace.name)
    task = ws.labeling.create_task(
        "pets",
        "image-classification",
        labels=[SCRIPT[:60], "dog"],
        lines=[{"data": {"source": "a.jpg"}}],
        description=SCRIPT,
    )
    shown = live_server.client().workspace(workspace.name).labeling.get(task.id)._repr_html_()
    assert_escaped(shown)
    assert "&lt;script&gt;alert(&#x27;pwned&#x27;)" in shown  # the label, cut at 60 characters
    assert "<script" not in live_server.client().workspace(workspace.name).labeling._repr_html_().lower()


def test_a_failed_jobs_log_tail_is_escaped_in_its_repr_and_monitor(live_server, workspace):
    dev = live_server.client("dev").workspace(workspace.name)
    log_line = "<script>alert(1)</script>"
    command = f"python -c 'import sys; print(\"{log_line}\", file=sys.stderr); sys.exit(3)'"
    job = dev.jobs.submit(f"job {SCRIPT}"[:100], command, workers=1)
    job.wait(timeout=180)
    seen = live_server.client().workspace(workspace.name).jobs.get(job.id)  # as the owner sees it
    assert seen.detail.state == "Failed" and log_line in (seen.detail.reason or ""), seen.detail
    assert_escaped(seen._repr_html_())
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in seen._repr_html_()  # the log tail, as text
    listed = live_server.client().workspace(workspace.name).jobs._repr_html_()
    assert "<script" not in listed.lower() and "&lt;script&gt;" in listed  # the job's name

    from pai_lab.widgets.job_monitor import JobMonitor

    monitor = JobMonitor(seen, refresh=0)
    monitor.update()
    assert_escaped(monitor.header.value)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in monitor.header.value
    monitor.close()
