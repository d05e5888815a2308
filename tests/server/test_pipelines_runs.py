"""Pipeline runs on a real `pai server` and its Dask cluster, through the Python client and the CLI."""

from __future__ import annotations

import json
import os
import time

import psutil
import pytest

from pai_lab.client.pipelines import PipelineRunError
from pai_lab.errors import BadInput, Forbidden
from pai_lab.pipelines import (
    MetadataBuilder,
    Pipeline,
    PipelineArtifact,
    PipelineParameter,
    ScriptOperator,
    component,
)
from tests.conftest import start_pai_server
from tests.fixtures.pipelines import gated_value_pipeline
from tests.fixtures.training import wait_for


@pytest.fixture
def ws(live_server, unique_name):
    ws = live_server.client().create_workspace(unique_name("pl"))
    ws.members.add("dev", ["AlgorithmDeveloper"])
    ws.members.add("guest", ["Guest"])
    return ws


@component(outputs=[PipelineParameter("seen", str)])
def look_at_the_state_folder(state: str):
    """Written at module level: pickled by value with this module, which the step's process cannot import."""

    return {"seen": ",".join(sorted(os.listdir(state))) if os.path.isdir(state) else "missing"}


def steps_of(run_id: str) -> list:
    """The live processes of a run's steps (found by the PAI_RUN_ID they carry)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("PAI_RUN_ID") == run_id and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (psutil.Error, OSError):
            continue
    return found


def make_and_sum():
    """make writes a table; total reads it back; both are plain functions pickled to the worker."""

    @component(outputs=[PipelineArtifact("table", MetadataBuilder.fs_dataset())])
    def make(n: int = 4, context=None):
        import pandas as pd

        print(f"making {n} rows")
        context.output_artifacts["table"].save_dataframe(pd.DataFrame({"x": range(n)}))

    @component(
        inputs=[PipelineArtifact("table", MetadataBuilder.fs_dataset(), required=True), PipelineParameter("k", int, 1)],
        outputs=[PipelineParameter("total", int)],
    )
    def total(k: int, context=None):
        df = context.input_artifacts["table"].read_dataframe()
        print(f"sum={df.x.sum()}")
        return {"total": int(df.x.sum()) * k}

    made = make.as_step(name="make", inputs={"n": PipelineParameter("n", int, 4)})
    summed = total.as_step(name="total", inputs={"table": made.outputs["table"], "k": PipelineParameter("k", int)})
    return Pipeline(steps=[summed], outputs={"total": summed.outputs["total"], "table": made.outputs["table"]})


def test_a_run_walks_pai_states_and_hands_outputs_by_reference(ws):
    run = ws.pipelines.run(make_and_sum(), arguments={"k": 3}, name="sums")
    assert run.detail.status in ("Initialized", "WorkflowServiceStarting", "Running")
    seen = {run.detail.status}
    while run.detail.status not in ("Succeeded", "Failed"):
        seen.add(run.refresh(changed_from=run.detail.status, wait=5).status)
    assert run.detail.status == "Succeeded", run.detail.reason
    assert {"Running", "Succeeded"} <= seen
    assert [(n.name, n.status, n.cached) for n in run.detail.nodes] == [
        ("make", "Succeeded", False),
        ("total", "Succeeded", False),
    ]
    outputs = {a.name: a for a in run.get_outputs()}
    assert outputs["total"].value == 18  # 0+1+2+3, times 3
    uri = outputs["table"].uri
    assert uri.startswith("file://") and uri.endswith("/make/outputs/artifacts/table/files/data.csv")
    assert run.get_logs("make") == ["making 4 rows"]
    assert run.get_logs("total") == ["sum=6"]
    listed = ws.pipelines.list()
    assert [r.id for r in listed] == [run.id] and listed[0].status == "Succeeded"
    # what display(run) shows: the DAG coloured by state and the step table
    assert '"make" -> "total";' in run.dot() and 'fillcolor="#a3cfbb"' in run.dot()
    html = run._repr_html_()
    assert "<b>Succeeded</b>" in html and html.count("<rect") == 2 and html.count("fill='#a3cfbb'") == 2


def test_a_script_operator_gets_pai_container_contract(ws, tmp_path):
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "main.py").write_text(
        "import argparse, json, os, pathlib\n"
        "p = argparse.ArgumentParser(); p.add_argument('--foo'); p.add_argument('--bar')\n"
        "args = p.parse_args()\n"
        "print('args', args.foo, args.bar)\n"
        "work = pathlib.Path(os.environ['PAI_WORK_DIR'])\n"
        "print('param-file', (work / 'inputs/parameters/foo').read_text())\n"
        "print('artifact', (work / 'inputs/artifacts/data/data').read_text())\n"
        "print('env', json.loads(os.environ['PAI_INPUTS_PARAMETERS']), os.environ['PAI_RUN_ID'][:4],\n"
        "      os.environ['PAI_NODE_ID'][:5], 'PAI_LAB_TOKEN' in os.environ)\n"
        "out = work / 'outputs/artifacts/result'\n"
        "(out / 'data').write_text(json.dumps({'location': {'uri': 'file:///somewhere/model'}}))\n"
    )
    data = tmp_path / "input.csv"
    data.write_text("x\n1\n")
    op = ScriptOperator(
        entry_point="main.py",
        script_dir=str(scripts),
        identifier="simpleExample",
        inputs=[
            PipelineParameter(name="foo", default=10),
            PipelineParameter(name="bar", default=10),
            PipelineArtifact("data", MetadataBuilder.fs_dataset(), required=True),
        ],
        outputs=[PipelineArtifact("result", MetadataBuilder.local_model())],
    )
    run = op.run(
        job_name="exampleScript",
        arguments={"foo": "ThisIsFoo", "data": str(data)},
        workspace=ws,
        show_outputs=False,
        timeout=120,
    )
    assert run.detail.status == "Succeeded"
    lines = run.get_logs("simpleExample")
    assert lines[0] == "args ThisIsFoo 10"
    assert lines[1] == "param-file ThisIsFoo"
    assert json.loads(lines[2][len("artifact ") :]) == {"location": {"uri": f"file://{data.resolve()}"}}
    assert lines[3] == ("env [{'name': 'foo', 'value': 'ThisIsFoo'}, {'name': 'bar', 'value': '10'}] run- node- False")
    assert run.get_outputs()[0].value == {"location": {"uri": "file:///somewhere/model"}}


def test_equal_steps_are_cached_unless_the_run_says_otherwise(ws):
    first = ws.pipelines.run(make_and_sum(), arguments={"k": 2}, wait=True, show_outputs=False, timeout=120)
    again = ws.pipelines.run(make_and_sum(), arguments={"k": 2}, wait=True, show_outputs=False, timeout=120)
    assert [(n.status, n.cached) for n in again.detail.nodes] == [("Skipped", True), ("Skipped", True)]
    assert first.id in again.detail.nodes[0].reason
    assert {a.name: a.value for a in again.get_outputs()} == {a.name: a.value for a in first.get_outputs()}
    other_k = ws.pipelines.run(make_and_sum(), arguments={"k": 5}, wait=True, show_outputs=False, timeout=120)
    assert [(n.status, n.cached) for n in other_k.detail.nodes] == [("Skipped", True), ("Succeeded", False)]
    assert {a.name: a.value for a in other_k.get_outputs()}["total"] == 30
    fresh = ws.pipelines.run(
        make_and_sum(), arguments={"k": 2}, cache=False, wait=True, show_outputs=False, timeout=120
    )
    assert [(n.status, n.cached) for n in fresh.detail.nodes] == [("Succeeded", False), ("Succeeded", False)]


def flaky_pipeline(flag):
    @component(outputs=[PipelineParameter("value", int)])
    def first():
        print("first ran")
        return 1

    @component(inputs=[PipelineParameter("value", int)], outputs=[PipelineParameter("value", int)])
    def flaky(value: int):

        print("flaky ran")
        if not os.path.exists(flag):
            raise RuntimeError("the flag file is missing")
        return value + 1

    @component(inputs=[PipelineParameter("value", int)], outputs=[PipelineParameter("value", int)])
    def last(value: int):
        return value * 10

    a = first.as_step(name="first")
    b = flaky.as_step(name="flaky", inputs={"value": a.outputs["value"]})
    c = last.as_step(name="last", inputs={"value": b.outputs["value"]})
    return Pipeline(steps=[c], outputs={"result": c.outputs["value"]})


def test_a_failing_step_fails_the_run_with_its_log_tail_and_retry_reuses_what_succeeded(ws, tmp_path):
    flag = tmp_path / "flag"
    run = ws.pipelines.run(flaky_pipeline(str(flag)), name="flaky", cache=False)
    with pytest.raises(PipelineRunError) as err:
        run.wait_for_completion(show_outputs=False, timeout=120)
    assert "failed" in str(err.value)
    assert run.detail.status == "Failed"
    assert run.detail.reason.startswith("step 'flaky' failed: the step's process exited with code 1")
    assert "RuntimeError: the flag file is missing" in run.detail.reason
    assert [(n.name, n.status) for n in run.detail.nodes] == [
        ("first", "Succeeded"),
        ("flaky", "Failed"),
        ("last", "Skipped"),
    ]
    first_finished = run.detail.nodes[0].finished_at
    flag.write_text("now")
    run.retry()
    run.wait_for_completion(show_outputs=False, timeout=120)
    assert [(n.name, n.status) for n in run.detail.nodes] == [
        ("first", "Succeeded"),
        ("flaky", "Succeeded"),
        ("last", "Succeeded"),
    ]
    assert run.detail.nodes[0].finished_at == first_finished  # not run again
    assert run.get_logs("first") == ["first ran"]
    assert run.detail.attempt == 2
    assert run.get_outputs()[0].value == 20


def test_terminate_ends_running_steps_and_skips_the_rest(ws):
    @component(outputs=[PipelineParameter("done", int)])
    def slow():
        import time

        print(f"pid={os.getpid()}", flush=True)
        time.sleep(120)
        return 1

    @component(inputs=[PipelineParameter("done", int)])
    def after(done: int):
        print("never")

    s = slow.as_step(name="slow")
    p = Pipeline(steps=[after.as_step(name="after", inputs={"done": s.outputs["done"]})])
    run = ws.pipelines.run(p, cache=False)
    wait_for(lambda: run.refresh().nodes[0].status == "Running" and run.get_logs("slow"))
    assert steps_of(run.id)
    # a Guest reads runs but may not stop them
    guest_run = ws.client.__class__(ws.http.info.url, "tok-guest").workspace(ws.name).pipelines.get(run.id)
    assert guest_run.detail.status == "Running"
    with pytest.raises(Forbidden):
        guest_run.terminate()
    run.terminate()
    wait_for(lambda: run.refresh().status == "Terminated", 30)
    assert [(n.name, n.status) for n in run.detail.nodes] == [("slow", "Terminated"), ("after", "Skipped")]
    wait_for(lambda: not steps_of(run.id), 10)
    with pytest.raises(PipelineRunError, match="terminated"):
        run.wait_for_completion(show_outputs=False)


def test_on_a_server_with_members_a_step_cannot_see_the_state_folder(ws, live_server):
    state = live_server.root / ".pai_lab"
    assert (state / "server.json").exists()
    run = ws.pipelines.run(
        look_at_the_state_folder, arguments={"state": str(state)}, wait=True, show_outputs=False, timeout=120
    )
    seen = run.get_outputs()[0].value
    assert "server.json" not in seen and "pai.db" not in seen


def test_suspend_holds_new_steps_until_resume(ws, tmp_path):
    gate = tmp_path / "gate"

    @component(outputs=[PipelineParameter("v", int)])
    def wait_gate():
        import time

        while not os.path.exists(gate):
            time.sleep(0.05)
        return 1

    @component(inputs=[PipelineParameter("v", int)])
    def then(v: int):
        print("then ran")

    a = wait_gate.as_step(name="gated")
    run = ws.pipelines.run(Pipeline(steps=[then.as_step(name="then", inputs={"v": a.outputs["v"]})]), cache=False)
    wait_for(lambda: run.refresh().nodes[0].status == "Running")
    run.suspend()
    wait_for(lambda: run.refresh().status == "Suspended")
    gate.write_text("open")
    wait_for(lambda: run.refresh().nodes[0].status == "Succeeded")
    time.sleep(0.5)
    assert run.refresh().nodes[1].status == "Initialized"  # suspended: the next step does not start
    run.resume()
    wait_for(lambda: run.refresh().status != "Suspended")  # the driver takes the request up
    run.wait_for_completion(show_outputs=False, timeout=60)
    assert [n.status for n in run.detail.nodes] == ["Succeeded", "Succeeded"]


def test_bad_runs_are_400s_naming_the_step_and_the_field(ws, live_server, tmp_path):
    p = make_and_sum()
    with pytest.raises(BadInput) as err:
        ws.pipelines.run(p, arguments={})
    assert err.value.field == "arguments.k" and "required argument" in err.value.message
    with pytest.raises(BadInput) as err:
        ws.pipelines.run(p, arguments={"k": 1, "kk": 2})
    assert err.value.field == "arguments.kk" and "not an input" in err.value.message
    with pytest.raises(BadInput) as err:
        ws.pipelines.run(p, arguments={"k": "many"})
    assert err.value.field == "arguments.k" and "not a Int" in err.value.message
    doc = p.to_dict()
    doc["spec"]["pipelines"][1]["spec"]["dependencies"] = ["total"]  # make waits on total: a cycle
    with pytest.raises(BadInput) as err:
        ws.pipelines.run(doc, arguments={"k": 1})
    assert "cycle" in err.value.message and err.value.field.startswith("steps.")
    doc = p.to_dict()
    del doc["spec"]["pipelines"][0]["spec"]["arguments"]["artifacts"][0]["from"]
    with pytest.raises(BadInput) as err:
        ws.pipelines.run(doc, arguments={"k": 1})
    assert err.value.field == "steps.total.table" and "not connected" in err.value.message

    @component(inputs=[PipelineArtifact("data", MetadataBuilder.fs_dataset(), required=True)])
    def reader():
        pass

    for secret in (str(live_server.root / ".pai_lab" / "server.json"), "/etc/passwd"):
        with pytest.raises(BadInput) as err:
            ws.pipelines.run(reader, arguments={"data": secret})
        assert err.value.field == "arguments.data" and "outside the allowed folders" in err.value.message
    dev = live_server.client("dev").workspace(ws.name)
    assert dev.pipelines.run(make_and_sum(), arguments={"k": 1}).detail.created_by == "dev"
    guest = live_server.client("guest").workspace(ws.name)
    with pytest.raises(Forbidden):
        guest.pipelines.run(make_and_sum(), arguments={"k": 1})
    assert len(guest.pipelines.list()) == 1


def test_the_cli_runs_a_manifest_and_reads_runs(cli, live_server, tmp_path):
    manifest = tmp_path / "sums.yaml"
    manifest.write_text(make_and_sum().to_yaml())
    rc, out, err = cli("pipeline", "run", str(manifest), "-a", "k=2", "--name", "cli-sums", "--wait", "--no-cache")
    assert rc == 0, err
    assert "make: making 4 rows" in out and "total: sum=6" in out
    run_id = out.split("Pipeline run [", 1)[1].split("]", 1)[0]
    rc, out, _ = cli("pipeline", "ls", "--name", "cli-sums", "--json")
    assert rc == 0 and [r["id"] for r in json.loads(out)] == [run_id]
    rc, out, _ = cli("pipeline", "get", run_id)
    assert rc == 0 and "Succeeded" in out and "total" in out
    rc, out, _ = cli("pipeline", "logs", run_id, "--node", "total")
    assert rc == 0 and out.strip() == "sum=6"
    rc, _, err = cli("pipeline", "retry", run_id)
    assert rc == 2 and "only a Failed or Terminated run can be retried" in err
    rc, _, err = cli("pipeline", "run", str(manifest))
    assert rc == 2 and "arguments.k" in err


def test_a_run_outlives_the_client_and_goes_on_after_a_server_restart(tmp_path):
    root = tmp_path / "root"
    server = start_pai_server(root)
    try:
        gate = root / "never"
        first_then_forever = gated_value_pipeline(gate, "forever")

        ws = server.client().workspace("default")
        run_id = ws.pipelines.run(first_then_forever, name="forever").id
        # another client (a new kernel) finds the run and sees it running
        ws2 = server.client().workspace("default")
        wait_for(lambda: {n.name: n.status for n in ws2.pipelines.get(run_id).nodes}.get("forever") == "Running")
        done_before = {n.name: n.finished_at for n in ws2.pipelines.get(run_id).nodes if n.status == "Succeeded"}
        assert list(done_before) == ["first"]
    finally:
        server.stop()
    server = start_pai_server(root)
    try:
        ws = server.client().workspace("default")
        run = ws.pipelines.get(run_id)
        wait_for(lambda: run.refresh().status == "Running")
        assert run.detail.attempt == 1
        assert "control plane restarted while the run was Running" in run.detail.reason
        assert "same attempt (1)" in run.detail.reason
        nodes = {n.name: n for n in run.detail.nodes}
        assert nodes["first"].status == "Succeeded" and nodes["first"].finished_at == done_before["first"]
        assert nodes["forever"].reason == "re-run: the control plane restarted while it ran"
        gate.write_text("open")
        run.wait_for_completion(show_outputs=False, timeout=120)
        assert run.detail.status == "Succeeded" and run.detail.attempt == 1
        assert {a.name: a.value for a in run.get_outputs()}["value"] == 8
        nodes = {n.name: n for n in run.detail.nodes}
        assert nodes["first"].finished_at == done_before["first"]  # kept, not run again
        assert nodes["forever"].status == "Succeeded"
        assert nodes["forever"].reason == "re-run: the control plane restarted while it ran"
        log = run.get_logs("forever")
        rerun = log.index("[pai_lab] re-run: the control plane restarted while it ran")
        assert log.count("forever starts") == 2 and log.index("forever starts") < rerun
    finally:
        server.stop()


def test_after_a_restart_a_suspended_run_waits_for_resume_and_a_run_without_its_folder_fails(tmp_path):
    import shutil

    root = tmp_path / "root"
    server = start_pai_server(root)
    try:
        gate = root / "gate"

        @component
        def wait_for_the_gate():
            import os
            import time

            while not os.path.exists(gate):
                time.sleep(0.1)

        ws = server.client().workspace("default")
        held = ws.pipelines.run(wait_for_the_gate, name="held")
        lost = ws.pipelines.run(wait_for_the_gate, name="lost")
        for run in (held, lost):
            wait_for(lambda run=run: run.refresh().nodes[0].status == "Running")
        held.suspend()
        wait_for(lambda: held.refresh().status == "Suspended")
    finally:
        server.stop()
    shutil.rmtree(next(p for p in root.rglob(lost.id) if p.is_dir() and p.parent.name == "runs"))
    server = start_pai_server(root)
    try:
        ws = server.client().workspace("default")
        held, lost = ws.pipelines.get(held.id), ws.pipelines.get(lost.id)
        assert lost.detail.status == "Failed"
        assert "cannot go on: its work folder is gone" in lost.detail.reason
        assert held.detail.status == "Suspended" and "stays Suspended until it is resumed" in held.detail.reason
        node = held.detail.nodes[0]
        assert node.status == "Initialized" and node.reason == "re-run: the control plane restarted while it ran"
        gate.write_text("open")
        held.resume().wait_for_completion(show_outputs=False, timeout=120)
        assert held.detail.status == "Succeeded" and held.detail.attempt == 1
    finally:
        server.stop()


def test_a_manifest_in_a_pai_cell_runs(live_server, monkeypatch, capsys):
    from IPython.core.interactiveshell import InteractiveShell

    monkeypatch.setenv("PAI_LAB_URL", live_server.url)
    monkeypatch.setenv("PAI_LAB_TOKEN", live_server.token)
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "pai_lab")
    detail = shell.run_cell_magic(
        "pai", "pipeline run -a k=5 --wait --no-cache --name from-a-cell", make_and_sum().to_yaml()
    )
    assert detail["status"] == "Succeeded" and detail["name"] == "from-a-cell"
    assert {o["name"]: o["value"] for o in detail["outputs"]}["total"] == 30
    assert "total: sum=6" in capsys.readouterr().out


def test_saved_operators_are_found_by_triple_and_run_as_steps(ws, live_server, tmp_path):
    from pai_lab.errors import Conflict
    from pai_lab.pipelines import PipelineStep, SavedOperator

    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "main.py").write_text(
        "import argparse, os, pathlib\n"
        "p = argparse.ArgumentParser(); p.add_argument('--foo'); args = p.parse_args()\n"
        "print('version one says', args.foo)\n"
        "out = pathlib.Path(os.environ['PAI_WORK_DIR']) / 'outputs/parameters/said'\n"
        "out.write_text('\"' + args.foo + '\"')\n"
    )
    op = ScriptOperator(
        entry_file="main.py",
        source_dir=str(scripts),
        inputs=[PipelineParameter("foo", default="hi")],
        outputs=[PipelineParameter("said", str)],
    )
    saved = op.save("echo", "v1", workspace=ws)
    assert saved.pipeline_id.startswith("pl-") and (saved.identifier, saved.version) == ("echo", "v1")
    assert saved.provider == "owner"  # the member who saved it
    with pytest.raises(Conflict) as err:
        op.save("echo", "v1", workspace=ws)
    assert err.value.field == "version"
    guest = live_server.client("guest").workspace(ws.name)
    assert [o.identifier for o in guest.pipelines.operators(provider="owner")] == ["echo"]
    with pytest.raises(Forbidden):
        guest.pipelines.save(op, "mine")
    (scripts / "main.py").write_text("raise SystemExit('the file changed after saving')\n")
    found = SavedOperator.get_by_identifier("echo", version="v1", workspace=ws)
    assert found.pipeline_id == saved.pipeline_id and [v.name for v in found.inputs] == ["foo"]
    assert [s.pipeline_id for s in SavedOperator.list(identifier="echo", workspace=ws)] == [saved.pipeline_id]
    step = PipelineStep(identifier="echo", version="v1", name="say", inputs={"foo": "saved code"}, workspace=ws)
    run = ws.pipelines.run(
        Pipeline(steps=[step], outputs={"said": step.outputs["said"]}), wait=True, show_outputs=False, timeout=120
    )
    assert run.get_logs("say") == ["version one says saved code"]
    assert run.get_outputs()[0].value == "saved code"
    with pytest.raises(BadInput, match="no saved operator splitt@v1 of provider 'pai'"):
        PipelineStep(identifier="splitt", provider="pai", version="v1", workspace=ws)


def test_a_step_cannot_hand_the_next_one_the_state_folder(ws, live_server):
    """A pointer a step writes is its own claim: the next step's sandbox does not show what it names."""
    secret = str(live_server.root / ".pai_lab" / "server.json")

    @component(outputs=[PipelineArtifact("loot", MetadataBuilder.any())])
    def point():
        return {"location": {"uri": "file://" + secret}}

    @component(
        inputs=[PipelineArtifact("loot", MetadataBuilder.any(), required=True)],
        outputs=[PipelineParameter("read", str)],
    )
    def take(context=None):
        try:
            return {"read": open(context.input_artifacts["loot"].local_path()).read()[:20]}
        except OSError as exc:
            return {"read": type(exc).__name__}

    first = point.as_step(name="point")
    second = take.as_step(name="take", inputs={"loot": first.outputs["loot"]})
    run = ws.pipelines.run(
        Pipeline(steps=[second], outputs={"read": second.outputs["read"]}), wait=True, show_outputs=False, timeout=120
    )
    assert run.get_outputs()[0].value in ("FileNotFoundError", "PermissionError")


def test_an_operator_environment_reaches_the_script_inside_the_sandbox(ws, tmp_path):
    scripts = tmp_path / "env"
    scripts.mkdir()
    (scripts / "show.py").write_text("import os\nprint(os.environ.get('GREETING'), os.environ.get('LD_PRELOAD'))\n")
    op = ScriptOperator(
        entry_file="show.py", source_dir=str(scripts), env={"GREETING": "hello", "LD_PRELOAD": "/nonexistent.so"}
    )
    run = op.run(workspace=ws, show_outputs=False, timeout=120)
    assert run.get_logs(op.identifier)[-1] == "hello /nonexistent.so"
    bad = op.to_dict()
    bad["spec"]["script"]["envs"] = {"NOT VALID": "x"}
    with pytest.raises(BadInput, match="not a variable name"):
        ws.pipelines.run(bad)


def test_function_steps_share_a_warm_runner_but_keep_their_own_folder_env_and_log(ws):
    """Steps of a run run one after another in a warm process: each still gets its work folder, its
    PAI_* variables and its log, a step that exits fails alone, and nothing of the run outlives it."""

    @component(inputs=[PipelineParameter("i", int)], outputs=[PipelineParameter("seen", str)])
    def where(i: int, context=None):
        print(f"step {i}")
        if i == 2:
            raise SystemExit(3)
        return {"seen": f"{os.environ['PAI_NODE_ID']}|{os.getcwd()}|{context.work_dir}"}

    steps = [where.as_step(name=f"w{i}", inputs={"i": i}) for i in range(4)]
    run = ws.pipelines.run(Pipeline(steps=steps), cache=False)
    with pytest.raises(PipelineRunError, match="step 'w2' failed: the step's process exited with code 3"):
        run.wait_for_completion(show_outputs=False, timeout=120)
    assert [(n.name, n.status) for n in run.detail.nodes] == [
        ("w0", "Succeeded"),
        ("w1", "Succeeded"),
        ("w2", "Failed"),
        ("w3", "Succeeded"),
    ]
    for i in (0, 1, 3):
        assert run.get_logs(f"w{i}") == [f"step {i}"]
        node_id, cwd, work_dir = run.get_outputs(node_id=f"w{i}")[0].value.split("|")
        assert node_id == run.detail.nodes[i].node_id
        assert cwd == work_dir and cwd.endswith(f"/{run.id}/w{i}")
    wait_for(lambda: not steps_of(run.id), 10)
