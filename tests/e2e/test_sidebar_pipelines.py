"""The sidebar's Pipelines section in real JupyterLab and headless Chromium: a run followed to Succeeded with
its DAG and a step's log, and another terminated from its button."""

from __future__ import annotations

import uuid

import pytest

from pai_lab.pipelines import Pipeline, PipelineParameter, component
from tests.fixtures.browser import open_lab, open_sidebar, save_screenshot

pytestmark = pytest.mark.e2e


@component(outputs=[PipelineParameter("n", int)])
def count(n: int = 3):
    print(f"counted to {n}", flush=True)
    return {"n": n}


@component(outputs=[PipelineParameter("twice", int)])
def double(n: int):
    print(f"doubling {n}", flush=True)
    return {"twice": 2 * n}


@component
def wait_long(seconds: int = 300):
    import time

    print("waiting", flush=True)
    time.sleep(seconds)


def start_run(lab, pipeline: Pipeline, name: str) -> str:
    answer = lab.api("POST", "/workspaces/default/pipelines/runs", {"manifest": pipeline.to_dict(), "name": name})
    assert answer.status_code == 201, answer.text
    return answer.json()["id"]


def test_a_run_is_followed_to_succeeded_and_another_is_terminated_from_the_sidebar(lab_server, page):
    counted = count.as_step(name="count")
    doubled = double.as_step(name="double", inputs={"n": counted.outputs["n"]})
    quick = start_run(lab_server, Pipeline(steps=[doubled]), "quick_" + uuid.uuid4().hex[:6])
    slow = start_run(lab_server, Pipeline(steps=[wait_long.as_step(name="wait")]), "slow_" + uuid.uuid4().hex[:6])

    open_lab(page, lab_server)
    sidebar = open_sidebar(page)
    section = sidebar.locator('[data-section="pipelines"]')

    # The quick run: the list polls until it has Succeeded with both steps done.
    row = section.locator(f'[data-run="{quick}"]')
    row.locator('.pai-state[data-state="Succeeded"]').wait_for(timeout=120_000)
    assert row.locator(".pai-steps").inner_text() == "2/2 steps"
    assert row.get_by_role("button", name="Terminate", exact=True).count() == 0  # nothing to stop on a finished run

    # Its DAG: both steps, green, the edge between them; a click on a step shows its log's tail.
    row.locator(".pai-row-main").click()
    dag = row.locator("svg.pai-dag")
    dag.locator('[data-step="double"][data-state="Succeeded"]').wait_for()
    assert dag.locator('[data-step="count"]').get_attribute("class") == "pai-dag-node pai-tone-ok"
    assert dag.locator(".pai-dag-edge").count() == 1
    dag.locator('[data-step="count"]').click()
    row.locator('[data-log="count"] .pai-log', has_text="counted to 3").wait_for()
    row.locator('select[aria-label="Step"]').select_option("double")
    row.locator('[data-log="double"] .pai-log', has_text="doubling 3").wait_for()
    save_screenshot(sidebar, "sidebar-pipelines.png")

    # The slow run: Suspend and Resume it, then Terminate (all allowed for the Owner) ends it, and Retry is
    # offered.
    slow_row = section.locator(f'[data-run="{slow}"]')
    slow_row.locator('.pai-state[data-state="Running"]').wait_for(timeout=120_000)
    suspend = slow_row.get_by_role("button", name="Suspend", exact=True)
    assert suspend.is_enabled() and "no new steps" in suspend.get_attribute("title")
    suspend.click()
    slow_row.locator('.pai-state[data-state="Suspended"]').wait_for(timeout=60_000)
    slow_row.get_by_role("button", name="Resume", exact=True).click()
    slow_row.locator('.pai-state[data-state="Running"]').wait_for(timeout=60_000)
    slow_row.get_by_role("button", name="Terminate", exact=True).click()
    slow_row.locator('.pai-state[data-state="Terminated"]').wait_for(timeout=60_000)
    assert lab_server.api("GET", f"/workspaces/default/pipelines/runs/{slow}").json()["status"] == "Terminated"
    assert slow_row.get_by_role("button", name="Retry", exact=True).is_enabled()
    assert slow_row.get_by_role("button", name="Terminate", exact=True).count() == 0
    assert section.locator(".pai-error").count() == 0, section.locator(".pai-error").all_inner_texts()
