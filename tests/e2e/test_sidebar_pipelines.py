"""The sidebar's Pipelines section in real JupyterLab and headless Chromium: a run followed to Succeeded with
its DAG and a step's log, and another terminated from its button."""

from __future__ import annotations

import json
import uuid

import pytest
import requests

from pai_lab.pipelines import Pipeline, PipelineParameter, component
from tests.fixtures.browser import open_lab, open_sidebar, save_screenshot, start_lab

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


def test_run_buttons_a_role_does_not_allow_are_greyed_out_saying_why(tmp_path, browser):
    """Members other than the lab's owner, each in a browser of their own (their token on every request)."""
    tokens = {"guest": "tok-guest-" + uuid.uuid4().hex[:8], "dev": "tok-dev-" + uuid.uuid4().hex[:8]}
    lab = start_lab(
        tmp_path,
        "--ServerApp.identity_provider_class=pai_lab.server.identity.NamedTokenIdentityProvider",
        f"--NamedTokenIdentityProvider.user_tokens={json.dumps(tokens)}",
        "--NamedTokenIdentityProvider.owner_name=owner",
    )
    try:
        assert lab.api("POST", "/workspaces/default/members", {"username": "guest", "roles": ["Guest"]}).ok
        dev = {"username": "dev", "roles": ["AlgorithmDeveloper"]}
        assert lab.api("POST", "/workspaces/default/members", dev).ok
        slow = start_run(lab, Pipeline(steps=[wait_long.as_step(name="wait")]), "owners_" + uuid.uuid4().hex[:6])

        seen = {}
        for user, token in tokens.items():
            context = browser.new_context(
                viewport={"width": 1400, "height": 900}, extra_http_headers={"Authorization": f"token {token}"}
            )
            context.set_default_timeout(60_000)
            page = context.new_page()
            try:
                page.goto(f"{lab.url}lab?reset")
                page.wait_for_selector("#jupyterlab-splash", state="detached", timeout=60_000)
                sidebar = open_sidebar(page)
                sidebar.locator(".pai-user", has_text=user).wait_for()
                row = sidebar.locator(f'[data-section="pipelines"] [data-run="{slow}"]')
                row.locator('.pai-state[data-state="Running"]').wait_for(timeout=120_000)
                terminate = row.get_by_role("button", name="Terminate", exact=True)
                page.wait_for_function(
                    "el => el.title && !el.title.startsWith('Loading')", arg=terminate.element_handle()
                )
                assert terminate.is_disabled()
                seen[user] = terminate.get_attribute("title")
                if user == "guest":
                    save_screenshot(sidebar, "sidebar-pipelines-guest.png")
            finally:
                context.close()
        assert seen["guest"].startswith("Guest may not pipeline.manage; it needs one of: Owner, Administrator")
        assert "only on runs you started" in seen["dev"]
        # what the sidebar greys out, the server refuses
        for token in tokens.values():
            refused = requests.post(
                f"{lab.url}pai-lab/api/v1/workspaces/default/pipelines/runs/{slow}/terminate",
                headers={"Authorization": f"token {token}"},
                timeout=30,
            )
            assert refused.status_code == 403, refused.text
    finally:
        lab.stop()
