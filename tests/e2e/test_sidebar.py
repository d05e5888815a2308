"""The pai_lab sidebar in real JupyterLab and headless Chromium, used the way a person would."""

from __future__ import annotations

import json
import sys
import time
import uuid

import pytest
import requests

from tests.fixtures.browser import open_lab, open_sidebar, save_screenshot, start_lab

pytestmark = pytest.mark.e2e

AREAS = ("datasets", "labeling", "jobs", "services")


def member_row(sidebar, username: str):
    return sidebar.locator(f'[data-section="members"] [data-member="{username}"]')


def wait_for_workspace_setting(lab, expected: str, timeout: float = 30) -> None:
    """The sidebar's `workspace` setting, read through JupyterLab's settings API, becomes `expected`."""
    url = f"{lab.url}lab/api/settings/pai-lab:sidebar"
    deadline = time.monotonic() + timeout
    while True:
        answer = requests.get(url, headers={"Authorization": f"token {lab.token}"}, timeout=30)
        assert answer.status_code == 200, answer.text
        saved = answer.json()["settings"].get("workspace")
        if saved == expected or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    assert saved == expected


def test_sidebar_shows_default_workspace_and_its_owner(lab_server, page):
    open_lab(page, lab_server)
    sidebar = open_sidebar(page)

    select = sidebar.locator(".pai-workspace-select")
    select.wait_for()
    assert select.input_value() == "default"
    owner = member_row(sidebar, "owner")
    owner.wait_for()
    assert "Owner" in owner.locator(".pai-role").all_inner_texts()

    # Every area has its section, and each one loads: a list, an empty note or "not available",
    # never an error.
    page.wait_for_function(
        """areas => areas.every(area => {
        const body = document.querySelector(`#pai-lab-sidebar [data-section="${area}"] .pai-section-body`);
        return body && body.children.length > 0 && !body.textContent.includes('Loading');
    })""",
        arg=list(AREAS),
    )
    assert sidebar.locator(".pai-error").count() == 0, sidebar.locator(".pai-error").all_inner_texts()
    save_screenshot(sidebar, "sidebar.png")


def test_create_workspace_through_the_sidebar_after_a_refused_name(lab_server, page):
    name = "team_" + uuid.uuid4().hex[:8]
    open_lab(page, lab_server)
    sidebar = open_sidebar(page)
    sidebar.locator(".pai-workspace-select").wait_for()

    sidebar.get_by_role("button", name="New workspace").click()
    form = sidebar.locator("form.pai-create-workspace")

    # A name the server refuses: its message appears inline and nothing is created.
    bad = "9" + name
    expected = lab_server.api("POST", "/workspaces", {"name": bad})
    assert expected.status_code == 400
    form.locator('input[name="workspace-name"]').fill(bad)
    form.get_by_role("button", name="Create workspace").click()
    error = form.locator(".pai-error")
    error.wait_for()
    assert error.inner_text() == expected.json()["error"]["message"]
    save_screenshot(sidebar, "sidebar-bad-name.png")
    assert bad not in sidebar.locator(".pai-workspace-select option").all_inner_texts()
    assert bad not in [w["name"] for w in lab_server.api("GET", "/workspaces").json()]

    form.locator('input[name="workspace-name"]').fill(name)
    form.locator('input[name="workspace-description"]').fill("made in the browser")
    form.get_by_role("button", name="Create workspace").click()

    # The new workspace is selected, listed in the switcher, and its creator is its Owner.
    sidebar.locator(f'.pai-sections[data-workspace="{name}"]').wait_for()
    assert sidebar.locator(".pai-workspace-select").input_value() == name
    assert name in sidebar.locator(".pai-workspace-select option").all_inner_texts()
    owner = member_row(sidebar, "owner")
    owner.wait_for()
    assert owner.locator(".pai-role").all_inner_texts() == ["Owner"]
    assert form.count() == 0  # the form closes once the workspace exists

    # The server agrees.
    listed = lab_server.api("GET", "/workspaces")
    assert listed.status_code == 200
    created = {w["name"]: w for w in listed.json()}
    assert created[name]["description"] == "made in the browser"
    assert created[name]["my_roles"] == ["Owner"]

    # A member added by a script shows up, with their roles, on refresh.
    added = lab_server.api(
        "POST", f"/workspaces/{name}/members", {"username": "alice", "roles": ["AlgorithmDeveloper", "LabelingAdmin"]}
    )
    assert added.status_code == 201, added.text
    sidebar.get_by_role("button", name="Refresh").click()
    alice = member_row(sidebar, "alice")
    alice.wait_for()
    assert sorted(alice.locator(".pai-role").all_inner_texts()) == ["AlgorithmDeveloper", "LabelingAdmin"]

    # Switching workspace switches what the sections show.
    sidebar.locator(".pai-workspace-select").select_option("default")
    sidebar.locator('.pai-sections[data-workspace="default"]').wait_for()
    member_row(sidebar, "owner").wait_for()
    assert member_row(sidebar, "alice").count() == 0

    # The choice survives a reload of the page.
    sidebar.locator(".pai-workspace-select").select_option(name)
    sidebar.locator(f'.pai-sections[data-workspace="{name}"]').wait_for()
    wait_for_workspace_setting(lab_server, name)  # saved (a reload before the save ends keeps the old one)
    page.reload()
    sidebar = open_sidebar(page)
    sidebar.locator(f'.pai-sections[data-workspace="{name}"]').wait_for()

    # It is kept in the user's settings (so another browser opens on it too); put "default" back for the
    # tests that follow, which share this JupyterLab.
    wait_for_workspace_setting(lab_server, name)
    sidebar.locator(".pai-workspace-select").select_option("default")
    sidebar.locator('.pai-sections[data-workspace="default"]').wait_for()
    wait_for_workspace_setting(lab_server, "default")


def test_sidebar_says_so_when_the_server_extension_is_off(tmp_path, chromium_path, page):
    lab = start_lab(tmp_path, "--ServerApp.jpserver_extensions=pai_lab=False")
    try:
        open_lab(page, lab)
        sidebar = open_sidebar(page)
        problem = sidebar.locator(".pai-problem")
        problem.wait_for()
        assert "server extension is not running" in problem.inner_text()
        assert "jupyter server extension list" in problem.inner_text()
        save_screenshot(sidebar, "sidebar-no-server-extension.png")
    finally:
        lab.stop()


def notebook_cells(page) -> list[str]:
    return page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell .cm-content").all_inner_texts()


def test_register_a_dataset_and_preview_it_in_a_notebook(lab_server, page):
    name = "reviews_" + uuid.uuid4().hex[:6]
    folder = lab_server.root / name
    folder.mkdir()
    for i, text in enumerate(["great", "awful", "fine"]):
        (folder / f"{i}.txt").write_text(text)
    notebook = lab_server.root / f"{name}.ipynb"
    kernelspec = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    notebook.write_text(
        json.dumps({"cells": [], "metadata": {"kernelspec": kernelspec}, "nbformat": 4, "nbformat_minor": 5})
    )

    page.goto(f"{lab_server.url}lab/tree/{notebook.name}?reset&token={lab_server.token}")
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=60_000)
    sidebar = open_sidebar(page)
    datasets = sidebar.locator('[data-section="datasets"]')
    datasets.get_by_role("button", name="Register").click()
    form = datasets.locator("form")

    # A source that does not exist: the server's message, inline, and nothing registered.
    form.locator('input[name="dataset-name"]').fill(name)
    form.locator('input[name="dataset-source"]').fill(f"{name}_missing")
    form.get_by_role("button", name="Register").click()
    error = form.locator(".pai-error")
    error.wait_for()
    expected = lab_server.api("POST", "/workspaces/default/datasets", {"name": name, "source": f"{name}_missing"})
    assert expected.status_code == 400
    assert error.inner_text() == expected.json()["error"]["message"]

    form.locator('input[name="dataset-source"]').fill(name)
    form.locator('select[name="dataset-type"]').select_option("text")
    form.get_by_role("button", name="Register").click()
    row = datasets.locator(f'[data-dataset="{name}"]')
    row.wait_for()
    assert "3 items" in row.inner_text() and "v1" in row.inner_text()
    registered = {d["name"]: d for d in lab_server.api("GET", "/workspaces/default/datasets").json()}
    assert registered[name]["item_count"] == 3 and registered[name]["data_type"] == "text"

    # Clicking the dataset shows its versions and puts a preview cell into the open notebook.
    row.locator(".pai-row-main").click()
    versions = row.locator(".pai-table tbody tr")
    versions.first.wait_for()
    assert versions.all_inner_texts()[0].split()[:2] == ["v1", "3"]
    row.get_by_role("button", name="Preview in notebook").click()
    expected_code = f'ds = pai_lab.connect("default").datasets.get("{name}")'
    page.wait_for_function(
        "code => [...document.querySelectorAll('.jp-Cell .cm-content')].some(c => c.innerText.includes(code))",
        arg=expected_code,
    )
    assert any(expected_code in cell and "ds.preview()" in cell for cell in notebook_cells(page))

    # A labeling task made from it (by a script) appears on refresh, with its progress and my roles.
    task = lab_server.api(
        "POST",
        "/workspaces/default/labeling/tasks",
        {
            "name": f"sentiment_{name}",
            "template": "text-classification",
            "dataset": name,
            "labels": ["good", "bad"],
            "labelers": ["owner"],
        },
    )
    assert task.status_code == 201, task.text
    task_id = task.json()["id"]
    sidebar.get_by_role("button", name="Refresh").click()
    task_row = sidebar.locator(f'[data-task="{task_id}"]')
    task_row.wait_for()
    assert "0/3" in task_row.locator(".pai-progress").first.inner_text()
    assert "labeler" in task_row.inner_text()
    task_row.get_by_role("button", name="Label in notebook").click()
    label_code = f'task = pai_lab.connect("default").labeling.get("{task_id}")'
    page.wait_for_function(
        "code => [...document.querySelectorAll('.jp-Cell .cm-content')].some(c => c.innerText.includes(code))",
        arg=label_code,
    )
    save_screenshot(page, "sidebar-with-notebook.png")


def test_a_job_and_a_service_run_and_stop_from_the_sidebar(lab_server, page, python_processor):
    name = "sleeper_" + uuid.uuid4().hex[:6]
    command = f"{sys.executable} -c \"print('rank up', flush=True); import time; time.sleep(300)\""
    submitted = lab_server.api("POST", "/workspaces/default/jobs", {"name": name, "command": command, "workers": 1})
    assert submitted.status_code == 201, submitted.text
    job_id = submitted.json()["id"]
    service = "echo_" + uuid.uuid4().hex[:6]
    created = lab_server.api(
        "POST",
        "/workspaces/default/services",
        {
            "name": service,
            "processor_type": "python",
            "processor_path": str(python_processor),
            "processor_entry": "app.py",
            "metadata": {"instance": 1},
        },
    )
    assert created.status_code in (200, 201), created.text

    open_lab(page, lab_server)
    sidebar = open_sidebar(page)

    # The job: its ranks, its live log tail, and Stop.
    row = sidebar.locator(f'[data-job="{job_id}"]')
    row.wait_for()
    assert "1 worker" in row.inner_text()
    row.locator(".pai-row-main").click()
    row.locator(".pai-log").filter(has_text="rank up").wait_for(timeout=60_000)
    row.get_by_role("button", name="Stop", exact=True).click()
    row.locator(".pai-state", has_text="Stopped").wait_for(timeout=60_000)
    assert row.get_by_role("button", name="Stop", exact=True).count() == 0
    assert lab_server.api("GET", f"/workspaces/default/jobs/{job_id}").json()["state"] == "Stopped"

    # The service: ready instances and its endpoint, then Stop.
    svc = sidebar.locator(f'[data-service="{service}"]')
    svc.locator(".pai-muted", has_text="1/1 ready").wait_for(timeout=60_000)
    endpoint = next(s for s in lab_server.api("GET", "/workspaces/default/services").json() if s["name"] == service)
    assert svc.locator("code").inner_text() == endpoint["endpoint"]
    svc.get_by_role("button", name="Copy", exact=True).click()
    svc.get_by_role("button", name="Copied", exact=True).wait_for()
    svc.get_by_role("button", name="Stop", exact=True).click()
    svc.locator(".pai-state", has_text="Stopped").wait_for(timeout=60_000)
    svc.get_by_role("button", name="Start", exact=True).wait_for()
    listed = {s["name"]: s for s in lab_server.api("GET", "/workspaces/default/services").json()}
    assert listed[service]["state"] == "Stopped"
    assert lab_server.api("DELETE", f"/workspaces/default/services/{service}").status_code == 204
