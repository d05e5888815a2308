"""The pai_lab sidebar in Jupyter Notebook 7: its file browser and notebook pages, not only JupyterLab."""

from __future__ import annotations

import json

import pytest

from tests.fixtures.browser import assert_sidebar_installed, save_screenshot, start_lab

pytestmark = pytest.mark.e2e
pytest.importorskip("notebook", minversion="7", reason="Notebook 7 is not installed (pip install -e '.[test]')")


def show_sidebar_from_the_view_menu(page):
    """View > Left Sidebar > Show pai_lab, as a Notebook 7 user opens a side panel."""
    page.get_by_role("menuitem", name="View").click()
    page.locator(".lm-Menu-item", has_text="Left Sidebar").hover()
    page.locator(".lm-Menu-item", has_text="Show pai_lab").click()
    sidebar = page.locator("#pai-lab-sidebar")
    sidebar.wait_for(state="visible")
    return sidebar


def assert_default_workspace_shown(sidebar):
    select = sidebar.locator(".pai-workspace-select")
    select.wait_for()
    assert select.input_value() == "default"
    owner = sidebar.locator('[data-section="members"] [data-member="owner"]')
    owner.wait_for()
    assert "Owner" in owner.locator(".pai-role").all_inner_texts()
    assert sidebar.locator(".pai-error").count() == 0, sidebar.locator(".pai-error").all_inner_texts()


def test_sidebar_opens_in_notebook7_tree_and_notebook_pages(tmp_path, chromium_path, page):
    lab = start_lab(tmp_path)
    try:
        assert_sidebar_installed(lab)
        kernelspec = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
        (lab.root / "n7.ipynb").write_text(
            json.dumps({"cells": [], "metadata": {"kernelspec": kernelspec}, "nbformat": 4, "nbformat_minor": 5})
        )

        page.goto(f"{lab.url}tree?token={lab.token}")
        page.wait_for_selector(".jp-FileBrowser", timeout=60_000)
        sidebar = show_sidebar_from_the_view_menu(page)
        assert_default_workspace_shown(sidebar)
        save_screenshot(page, "sidebar-notebook7-tree.png")

        page.goto(f"{lab.url}notebooks/n7.ipynb?token={lab.token}")
        page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=60_000)
        sidebar = show_sidebar_from_the_view_menu(page)
        assert_default_workspace_shown(sidebar)
        save_screenshot(page, "sidebar-notebook7-notebook.png")
    finally:
        lab.stop()
