"""The pai_lab sidebar in real JupyterLab and headless Chromium, used the way a person would."""

from __future__ import annotations

import uuid

import pytest

from tests.fixtures.browser import open_lab, open_sidebar, save_screenshot, start_lab

pytestmark = pytest.mark.e2e

AREAS = ("datasets", "labeling", "jobs", "services")


def member_row(sidebar, username: str):
    return sidebar.locator(f'[data-section="members"] [data-member="{username}"]')


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
    page.wait_for_function("""areas => areas.every(area => {
        const body = document.querySelector(`#pai-lab-sidebar [data-section="${area}"] .pai-section-body`);
        return body && body.children.length > 0 && !body.textContent.includes('Loading');
    })""", arg=list(AREAS))
    assert sidebar.locator(".pai-error").count() == 0, sidebar.locator(".pai-error").all_inner_texts()
    save_screenshot(sidebar, "sidebar.png")


def test_create_workspace_through_the_sidebar(lab_server, page):
    name = "team_" + uuid.uuid4().hex[:8]
    open_lab(page, lab_server)
    sidebar = open_sidebar(page)
    sidebar.locator(".pai-workspace-select").wait_for()

    sidebar.get_by_role("button", name="New workspace").click()
    form = sidebar.locator("form.pai-create-workspace")
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

    # The choice survives a reload of the page.
    page.reload()
    sidebar = open_sidebar(page)
    sidebar.locator(f'.pai-sections[data-workspace="{name}"]').wait_for()


def test_bad_workspace_name_shows_the_servers_message(lab_server, page):
    bad = "9lives-" + uuid.uuid4().hex[:4]
    expected = lab_server.api("POST", "/workspaces", {"name": bad})
    assert expected.status_code == 400
    message = expected.json()["error"]["message"]

    open_lab(page, lab_server)
    sidebar = open_sidebar(page)
    sidebar.locator(".pai-workspace-select").wait_for()
    sidebar.get_by_role("button", name="New workspace").click()
    form = sidebar.locator("form.pai-create-workspace")
    form.locator('input[name="workspace-name"]').fill(bad)
    form.get_by_role("button", name="Create workspace").click()

    error = form.locator(".pai-error")
    error.wait_for()
    assert error.inner_text() == message
    save_screenshot(sidebar, "sidebar-bad-name.png")
    assert bad not in sidebar.locator(".pai-workspace-select option").all_inner_texts()
    assert bad not in [w["name"] for w in lab_server.api("GET", "/workspaces").json()]


def test_switching_workspace_shows_its_members(lab_server, page):
    name = "shared_" + uuid.uuid4().hex[:8]
    assert lab_server.api("POST", "/workspaces", {"name": name}).status_code == 201
    added = lab_server.api("POST", f"/workspaces/{name}/members",
                           {"username": "alice", "roles": ["AlgorithmDeveloper", "LabelingAdmin"]})
    assert added.status_code == 201, added.text

    open_lab(page, lab_server)
    sidebar = open_sidebar(page)
    select = sidebar.locator(".pai-workspace-select")
    select.wait_for()
    select.select_option(name)

    sidebar.locator(f'.pai-sections[data-workspace="{name}"]').wait_for()
    alice = member_row(sidebar, "alice")
    alice.wait_for()
    assert sorted(alice.locator(".pai-role").all_inner_texts()) == ["AlgorithmDeveloper", "LabelingAdmin"]
    # default's members are gone from view: the sections follow the chosen workspace.
    select.select_option("default")
    sidebar.locator('.pai-sections[data-workspace="default"]').wait_for()
    member_row(sidebar, "owner").wait_for()
    assert member_row(sidebar, "alice").count() == 0


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
