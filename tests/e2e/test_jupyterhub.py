"""A team on one pai_lab under a real JupyterHub: each user's own server (through the Hub's proxy, with the
Hub's per-user auth) over one shared store and one Dask cluster; roles hold across users; the sidebar in
each user's JupyterLab shows that user. The Hub runs the config file that docs/jupyterhub.md shows."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from tests.fixtures.browser import open_sidebar, save_screenshot
from tests.fixtures.hub import HUB_OWNER, HUB_PASSWORD, HUB_TEAM
from tests.fixtures.training import processes_of, wait_for

pytestmark = pytest.mark.e2e

W = "workspaces/default"
HELLO = "print('hello from the team cluster', flush=True)\n"


def _ok(answer, status: int = 200):
    assert answer.status_code == status, (answer.status_code, answer.text)
    return answer.json() if answer.content else None


def test_team_members_roles_jobs_and_packages_across_users_servers(hub, remote_dask, team_database):
    # Each server knows its user as the Hub does, and every server has the same owner and the one cluster.
    for user in [HUB_OWNER, *HUB_TEAM]:
        me = _ok(hub.api(user, "GET", "me"))
        assert (me["username"], me["server_owner"]) == (user, user == HUB_OWNER)
        assert _ok(hub.api(user, "GET", "cluster"))["scheduler_address"] == remote_dask
    # A Hub token is good on its own user's server only (the Hub's proxy and OAuth say so).
    other = hub.api("gus", "GET", "me")
    assert other.status_code == 200
    stolen = hub.tokens["gus"]
    hub.tokens["gus"] = hub.tokens["ana"]
    try:
        assert hub.api("gus", "GET", "me").status_code in (401, 403)
    finally:
        hub.tokens["gus"] = stolen

    # The owner adds the team in their own session; every other server sees the members at once.
    for user, role in HUB_TEAM.items():
        _ok(hub.api(HUB_OWNER, "POST", f"{W}/members", {"username": user, "roles": [role]}), 201)
    seen = {m["username"]: m["roles"] for m in _ok(hub.api("gus", "GET", f"{W}/members"))}
    assert seen == {HUB_OWNER: ["Owner"], **{u: [r] for u, r in HUB_TEAM.items()}}
    # ...because they are rows of the one team store (PostgreSQL where there is one, as a team deploys it)
    engine = sa.create_engine(team_database)
    try:
        with engine.connect() as conn:
            stored = set(conn.execute(sa.text("SELECT username FROM members")).scalars())
    finally:
        engine.dispose()
    assert stored == {HUB_OWNER, *HUB_TEAM}

    # ana's job runs on the team's Dask cluster; lia sees it from her own server.
    script = hub.team_root / "hello.py"
    script.write_text(HELLO)
    job = _ok(
        hub.api("ana", "POST", f"{W}/jobs", {"name": "team-job", "command": f"python {script}", "workers": 1}), 201
    )
    for _ in range(20):
        job = _ok(hub.api("ana", "GET", f"{W}/jobs/{job['id']}", wait="20", history_after=str(len(job["history"]))))
        if job["state"] in ("Succeeded", "Failed", "Stopped"):
            break
    assert job["state"] == "Succeeded", job["reason"]
    listed = {j["id"]: j for j in _ok(hub.api("lia", "GET", f"{W}/jobs"))}
    assert listed[job["id"]]["created_by"] == "ana" and listed[job["id"]]["state"] == "Succeeded"
    logs = _ok(hub.api("lia", "GET", f"{W}/jobs/{job['id']}/logs"))
    assert "hello from the team cluster" in [x["line"] for x in logs]
    refused = hub.api("gus", "POST", f"{W}/jobs", {"name": "nope", "command": f"python {script}", "workers": 1})
    assert refused.status_code == 403 and "Guest" in refused.json()["error"]["message"]

    # lia makes a labeling task, hands package 1 to ana, and ana finds it hers in her own session.
    lines = [{"data": {"source": f"review {i}"}} for i in range(4)]
    task = {
        "name": "reviews",
        "template": "text-classification",
        "labels": ["good", "bad"],
        "lines": lines,
        "package_size": 2,
        "labelers": ["ana"],
    }
    _ok(hub.api("lia", "POST", f"{W}/labeling/tasks", task), 201)
    assert (
        _ok(hub.api("lia", "POST", f"{W}/labeling/tasks/reviews/packages/1/reassign", {"to": "ana"}))["holder"] == "ana"
    )
    packages = {p["number"]: p for p in _ok(hub.api("ana", "GET", f"{W}/labeling/tasks/reviews/packages"))}
    assert packages[1]["holder"] == "ana"
    items = _ok(hub.api("ana", "GET", f"{W}/labeling/tasks/reviews/packages/1/items"))
    assert [i["data"]["source"] for i in items] == ["review 0", "review 1"]
    ack = _ok(hub.api("ana", "POST", f"{W}/labeling/tasks/reviews/answers", {"item": 0, "answer": "good"}), 201)
    assert ack["stage"] == "label"

    # A Guest may read the task but not answer: 403 naming the role.
    assert _ok(hub.api("gus", "GET", f"{W}/labeling/tasks/reviews"))["name"] == "reviews"
    refused = hub.api("gus", "POST", f"{W}/labeling/tasks/reviews/answers", {"item": 1, "answer": "bad"})
    assert refused.status_code == 403, refused.text
    assert "Guest" in refused.json()["error"]["message"], refused.text


def test_a_running_job_outlives_a_teammates_server_restart_and_stops_from_another_server(hub):
    for user, role in HUB_TEAM.items():
        added = hub.api(HUB_OWNER, "POST", f"{W}/members", {"username": user, "roles": [role]})
        assert added.status_code in (201, 409), added.text
    script = hub.team_root / "sleeper.py"
    script.write_text("import time\nprint('sleeping', flush=True)\ntime.sleep(300)\n")
    job = _ok(
        hub.api("ana", "POST", f"{W}/jobs", {"name": "sleeper", "command": f"python {script}", "workers": 1}), 201
    )
    for _ in range(20):
        job = _ok(hub.api("ana", "GET", f"{W}/jobs/{job['id']}", wait="20", history_after=str(len(job["history"]))))
        if job["state"] != "Creating" and job["state"] != "Queuing":
            break
    assert job["state"] == "Running", job["reason"]

    # gus's server stops and starts again (the Hub's culler, a restart): it runs pai_lab's start-up over the
    # shared store, and ana's job, which her server still supervises, goes on.
    assert hub.hub_api("DELETE", "users/gus/server").status_code in (202, 204)
    hub.start_server("gus")
    seen = _ok(hub.api("gus", "GET", f"{W}/jobs/{job['id']}"))
    assert seen["state"] == "Running", seen["reason"]
    assert processes_of(job["id"])
    # The owner stops it from his own server: ana's server, which supervises it, ends its rank.
    stopped = _ok(hub.api(HUB_OWNER, "POST", f"{W}/jobs/{job['id']}/stop"))
    assert stopped["state"] == "Stopped", stopped["reason"]
    wait_for(lambda: not processes_of(job["id"]), 30)
    assert _ok(hub.api("ana", "GET", f"{W}/jobs/{job['id']}"))["state"] == "Stopped"


NOTEBOOK_CELL = """
import json, subprocess
import pai_lab
from pai_lab.client import PaiClient

ws = pai_lab.connect()  # no URL, no token: the server this kernel runs under
me = PaiClient().me()
print("me", json.dumps([me.username, me.server_owner]))
print("members", json.dumps(sorted(m.username for m in ws.members.list())))
get_ipython().run_line_magic("load_ext", "pai_lab")
print("magic", json.dumps(sorted(get_ipython().run_line_magic("pai", "member ls")["username"])))
cli = subprocess.run(["pai", "member", "add", "zed", "--role", "Guest", "--json"], capture_output=True, text=True)
print("cli", json.dumps([cli.returncode, cli.stderr.strip()]))
"""


def test_a_users_notebook_reaches_their_own_server_as_them_through_connect_the_magic_and_the_cli(hub):
    for user, role in HUB_TEAM.items():
        added = hub.api(HUB_OWNER, "POST", f"{W}/members", {"username": user, "roles": [role]})
        assert added.status_code in (201, 409), added.text
    team = sorted([HUB_OWNER, *HUB_TEAM])
    seen = {}
    for user in ("gus", "lead"):  # gus first: the owner's cell adds a member
        printed = dict(line.split(" ", 1) for line in hub.run_in_kernel(user, NOTEBOOK_CELL).splitlines())
        seen[user] = {key: json.loads(value) for key, value in printed.items()}
    # the owner's notebook is the owner; gus's notebook is gus, on every door, with the roles of gus
    assert seen["lead"]["me"] == ["lead", True] and seen["gus"]["me"] == ["gus", False]
    assert seen["lead"]["members"] == seen["gus"]["members"] == team
    assert seen["lead"]["magic"] == seen["gus"]["magic"] == team
    assert seen["lead"]["cli"][0] == 0  # the owner's `pai` in a notebook adds a member...
    returncode, stderr = seen["gus"]["cli"]
    assert returncode != 0 and "Guest" in stderr  # ...and gus's is refused, naming his role
    _ok(hub.api(HUB_OWNER, "DELETE", f"{W}/members/zed"), 204)


WIDGET_CELL = """
import json
import pai_lab

try:
    labeler = pai_lab.connect().labeling.get("team_widget").label()  # the labeling widget of this notebook
    print("widget", json.dumps([labeler.package["number"], labeler.package["holder"], len(labeler.items)]))
except Exception as exc:
    print("widget", json.dumps(str(exc)))
"""


def test_a_labelers_widget_in_their_own_notebook_opens_the_package_handed_to_them_and_a_guests_cannot(hub):
    for user, role in HUB_TEAM.items():
        added = hub.api(HUB_OWNER, "POST", f"{W}/members", {"username": user, "roles": [role]})
        assert added.status_code in (201, 409), added.text
    lines = [{"data": {"source": f"photo {i}"}} for i in range(6)]
    task = {"name": "team_widget", "template": "text-classification", "labels": ["ok", "not ok"], "lines": lines}
    _ok(hub.api("lia", "POST", f"{W}/labeling/tasks", {**task, "package_size": 2, "labelers": ["ana", "gus"]}), 201)
    # the LabelingAdmin hands package 3 to ana from her own session
    handed = _ok(hub.api("lia", "POST", f"{W}/labeling/tasks/team_widget/packages/3/reassign", {"to": "ana"}))
    assert handed["holder"] == "ana"

    def opened(user: str):
        (line,) = hub.run_in_kernel(user, WIDGET_CELL).splitlines()
        return json.loads(line.split(" ", 1)[1])

    assert opened("ana") == [3, "ana", 2]  # ana's widget, in her kernel, opens the package handed to her
    refused = opened("gus")
    assert isinstance(refused, str) and "Guest" in refused  # a Guest's labeler gets no package to answer
    packages = {
        p["number"]: p["holder"] for p in _ok(hub.api("lia", "GET", f"{W}/labeling/tasks/team_widget/packages"))
    }
    assert packages[3] == "ana" and "gus" not in packages.values()


@pytest.mark.parametrize("user", ["lia", "gus"])
def test_each_users_jupyterlab_through_the_hub_shows_their_own_name_and_roles(hub, page, user):
    added = hub.api(HUB_OWNER, "POST", f"{W}/members", {"username": user, "roles": [HUB_TEAM[user]]})
    if added.status_code != 201:  # already a member (the other test added the team)
        _ok(hub.api(HUB_OWNER, "PATCH", f"{W}/members/{user}", {"roles": [HUB_TEAM[user]]}))
    page.goto(f"{hub.url}hub/login?next=/hub/user/{user}/lab")
    page.locator("#username_input").fill(user)
    page.locator("#password_input").fill(HUB_PASSWORD)
    page.locator("#login_submit").click()
    page.wait_for_url(f"**/user/{user}/lab**", timeout=60_000)
    page.wait_for_selector("#jupyterlab-splash", state="detached", timeout=90_000)
    sidebar = open_sidebar(page)
    sidebar.locator(".pai-user").wait_for()
    assert sidebar.locator(".pai-user").inner_text() == user
    sidebar.get_by_text(f"my roles: {HUB_TEAM[user]}").wait_for()
    page.wait_for_function("!document.querySelector('#pai-lab-sidebar').textContent.includes('Loading')")
    assert sidebar.locator(".pai-error").count() == 0, sidebar.locator(".pai-error").all_inner_texts()
    save_screenshot(sidebar, f"jupyterhub-{user}-sidebar.png")
