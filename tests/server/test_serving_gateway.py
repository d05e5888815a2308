"""Services called the way users call them: a real `pai server`, its gateway process and
instance processes; the client, the `pai eascmd` CLI, plain HTTP in three protocols, the
official `eas-prediction` client and `tritonclient`. One SavedModel service is shared by the
tests that only call it (instances take seconds to load TensorFlow); a test that changes a service
(a new version, a scale, a release, a stop) makes its own, so the tests pass in any order."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import textwrap
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests

from tests.fixtures.serving import Load, gateway_of, gauge, service_request_counts, until

pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def ws(live_server):
    return live_server.client().workspace("default")


def tf_spec(saved_model) -> dict:
    return {
        "name": f"mnist_{uuid.uuid4().hex[:8]}",
        "model_path": str(saved_model),
        "processor": "tensorflow_cpu_2.7",
        "metadata": {"instance": 1, "rpc": {"batching": True}},
    }


@pytest.fixture(scope="module")
def tf_service(ws, saved_model):
    """Shared: the tests that use it only call it."""
    svc = ws.services.create(tf_spec(saved_model))
    yield svc
    svc.delete()


def echo_spec(name: str, python_processor, **metadata) -> dict:
    return {
        "name": name,
        "processor_type": "python",
        "processor_path": str(python_processor),
        "processor_entry": "app.py",
        "metadata": {"instance": 1, **metadata},
    }


@pytest.fixture
def echo_service(ws, python_processor):
    """A custom Python processor with the EAS defaults (it starts in a second: no TensorFlow); one per test."""
    svc = ws.services.create(echo_spec(f"echo_{uuid.uuid4().hex[:8]}", python_processor))
    yield svc
    svc.delete()


@pytest.fixture
def slow_service(ws, python_processor):
    """A Python processor with one worker, a queue of 2 and a 3 s keepalive; one per test."""
    svc = ws.services.create(
        {
            "name": f"echo_{uuid.uuid4().hex[:8]}",
            "processor_type": "python",
            "processor_path": str(python_processor),
            "processor_entry": "app.py",
            "metadata": {"instance": 1, "workers": 1, "rpc": {"max_queue_size": 2, "keepalive": 3000}},
        }
    )
    yield svc
    svc.delete()


def post(svc, body, token=True, path=None, **kw):
    headers = {"Authorization": svc.token} if token else {}
    url = gateway_of(svc.endpoint) + path if path else svc.endpoint
    return requests.post(
        url, data=body if isinstance(body, bytes) else json.dumps(body), headers=headers, timeout=30, **kw
    )


def test_same_prediction_over_eas_tf_serving_and_v2(tf_service, in_process_model):
    from pai_lab.serving.protocols import eas_pb

    x = np.random.default_rng(1).normal(size=(3, 4)).astype(np.float32)
    expected = in_process_model(x)
    name = tf_service.name
    assert np.allclose(tf_service.predict(x), expected, atol=1e-6)

    answer = post(tf_service, {"inputs": {"images": x.tolist()}})
    assert answer.status_code == 200 and np.allclose(answer.json()["outputs"]["scores"], expected, atol=1e-6)

    request = eas_pb.PredictRequest(signature_name="predict_images")
    eas_pb.fill_array(request.inputs["images"], x)
    answer = post(tf_service, request.SerializeToString())
    response = eas_pb.PredictResponse()
    response.ParseFromString(answer.content)
    assert np.allclose(eas_pb.array_to_numpy(response.outputs["scores"]), expected, atol=1e-6)

    row = post(tf_service, {"instances": x.tolist()}, path=f"/v1/models/{name}:predict")
    assert np.allclose(row.json()["predictions"], expected, atol=1e-6)
    columnar = post(tf_service, {"inputs": {"images": x.tolist()}}, path=f"/v1/models/{name}/versions/1:predict")
    assert np.allclose(columnar.json()["outputs"], expected, atol=1e-6)

    infer = post(
        tf_service,
        {"inputs": [{"name": "images", "shape": [3, 4], "datatype": "FP32", "data": x.ravel().tolist()}]},
        path=f"/v2/models/{name}/infer",
    )
    out = infer.json()["outputs"][0]
    assert out["name"] == "scores" and out["shape"] == [3, 2]
    assert np.allclose(np.reshape(out["data"], out["shape"]), expected, atol=1e-6)

    signature = requests.get(tf_service.endpoint, headers={"Authorization": tf_service.token}).json()
    assert signature["signature_name"] == "predict_images"
    assert signature["inputs"] == [{"name": "images", "shape": [-1, 4], "type": "DT_FLOAT"}]
    status = requests.get(
        gateway_of(tf_service.endpoint) + f"/v1/models/{name}", headers={"Authorization": tf_service.token}
    ).json()
    assert status["model_version_status"][0]["state"] == "AVAILABLE"


def test_tritonclient_gets_the_models_answers(tf_service, in_process_model):
    import tritonclient.http as triton

    x = np.random.default_rng(2).normal(size=(5, 4)).astype(np.float32)
    client = triton.InferenceServerClient(url=gateway_of(tf_service.endpoint).removeprefix("http://"))
    headers = {"Authorization": tf_service.token}
    assert client.is_server_ready() and client.is_model_ready(tf_service.name, headers=headers)
    assert client.get_model_metadata(tf_service.name, headers=headers)["inputs"][0]["name"] == "images"
    for binary in (True, False):
        tensor = triton.InferInput("images", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x, binary_data=binary)
        result = client.infer(
            tf_service.name,
            [tensor],
            outputs=[triton.InferRequestedOutput("scores", binary_data=binary)],
            headers=dict(headers),
        )  # infer() adds to the dict it is given
        assert np.allclose(result.as_numpy("scores"), in_process_model(x), atol=1e-6)


def test_the_official_eas_client_works_unchanged(tf_service, in_process_model, eas_prediction_python):
    x = np.random.default_rng(3).normal(size=(2, 4)).astype(np.float32)
    script = textwrap.dedent(f"""
        import json
        from eas_prediction import PredictClient, TFRequest
        client = PredictClient({gateway_of(tf_service.endpoint)!r}, {tf_service.name!r})
        client.set_token({tf_service.token!r})
        client.init()
        request = TFRequest("predict_images")
        request.add_feed("images", [2, 4], TFRequest.DT_FLOAT, {x.ravel().tolist()!r})
        request.add_fetch("scores")
        response = client.predict(request)
        print(json.dumps({{"shape": list(response.get_tensor_shape("scores")),
                          "values": list(response.get_values("scores"))}}))
    """)
    done = subprocess.run([eas_prediction_python, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["shape"] == [2, 2]
    assert np.allclose(np.reshape(answer["values"], (2, 2)), in_process_model(x), atol=1e-6)


def test_refusals_say_what_is_wrong(tf_service):
    good = {"inputs": {"images": [[0.0, 1.0, 2.0, 3.0]]}}
    assert post(tf_service, good, token=False).status_code == 401
    assert requests.post(tf_service.endpoint, json=good, headers={"Authorization": "wrong"}).status_code == 401
    assert post(tf_service, good, path="/api/predict/no_such_service").status_code == 404
    bad = post(tf_service, {"inputs": {"images": [[0.0, 1.0]]}})
    assert bad.status_code == 400 and "images" in bad.text and "[-1, 4]" in bad.text
    missing = post(tf_service, good, path=f"/v1/models/{tf_service.name}/versions/9:predict")
    assert missing.status_code == 404 and "Servable not found" in missing.json()["error"]


def test_metrics_parse_as_prometheus_text(tf_service):
    from prometheus_client.parser import text_string_to_metric_families

    for _ in range(3):
        assert post(tf_service, {"inputs": {"images": [[0.0, 1.0, 2.0, 3.0]]}}).status_code == 200
    families = {
        f.name: f
        for f in text_string_to_metric_families(requests.get(gateway_of(tf_service.endpoint) + "/metrics").text)
    }
    ok = [
        s
        for s in families["pai_serving_requests"].samples
        if s.labels.get("service") == tf_service.name and s.labels.get("code") == "200" and s.name.endswith("_total")
    ]
    # predictions are counted per instance (signature reads touch no instance)
    assert sum(s.value for s in ok if s.labels["instance"]) >= 3
    assert any(
        s.labels.get("service") == tf_service.name for s in families["pai_serving_request_latency_seconds"].samples
    )
    assert any(s.labels.get("service") == tf_service.name for s in families["pai_serving_batch_size"].samples)
    assert any(s.labels.get("service") == tf_service.name for s in families["pai_serving_queue_depth"].samples)


def test_blue_green_release_under_load_then_a_30_percent_split(echo_service, cli, service_json, python_processor):
    entry = echo_service
    rc, out, err = cli("eascmd", "create", "-r", service_json(echo_spec(entry.name, python_processor)))
    assert rc == 0, err
    child = re.search(rf"/api/predict/({entry.name}_[0-9a-f]{{8}})", out).group(1)
    assert "[OK] Service is running" in out
    child_url = gateway_of(entry.endpoint) + f"/api/predict/{child}"
    token = re.search(r"Token \| (\S+)", out).group(1)
    body = json.dumps({"values": [1, 2]}).encode()
    assert requests.post(child_url, data=body, headers={"Authorization": token}).json() == {"sum": 3, "n": 2}

    load = Load(entry.endpoint, body, {"Authorization": entry.token})
    time.sleep(0.5)
    rc, out, err = cli("eascmd", "release", child, "-w", "30", "-y")
    time.sleep(1.0)
    codes = load.stop()
    assert rc == 0 and f"[OK] Service [{child}] is weighted to 30% now" in out
    assert set(codes) == {200}, codes

    assert requests.post(child_url, data=body, headers={"Authorization": token}).status_code == 404
    before = service_request_counts(gateway_of(entry.endpoint))
    session = requests.Session()

    def one(_):
        return session.post(entry.endpoint, data=body, headers={"Authorization": entry.token}).status_code

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(one, range(2000)))
    assert set(codes) == {200}
    after = service_request_counts(gateway_of(entry.endpoint))
    share = (after[child] - before.get(child, 0)) / 2000
    assert 0.27 <= share <= 0.33, share
    rc, out, _ = cli("eascmd", "ls")
    assert re.search(rf"\| {child} +\| local +\| 1 +\|.*\| Running +\| 30 +\| /api/predict/{entry.name} +\|", out)

    rc, out, _ = cli("eascmd", "delete", child, "-y")
    assert rc == 0 and "[OK] Service was deleted successfully" in out
    before = service_request_counts(gateway_of(entry.endpoint))
    for _ in range(20):
        assert session.post(entry.endpoint, data=body, headers={"Authorization": entry.token}).ok
    after = service_request_counts(gateway_of(entry.endpoint))
    assert after[entry.name] - before[entry.name] == 20


def test_rolling_update_loses_no_request(ws, saved_model, cli, service_json, saved_model_v2, in_process_model):
    service = ws.services.create(tf_spec(saved_model))  # its own: it moves to version 2
    x = np.array([[0.3, -1.2, 0.8, 2.0]], dtype=np.float32)
    v1 = in_process_model(x)
    body = json.dumps({"inputs": {"images": x.tolist()}}).encode()
    load = Load(service.endpoint, body, {"Authorization": service.token})
    try:
        rc, out, err = cli(
            "eascmd",
            "modify",
            service.name,
            "-s",
            service_json({"model_path": str(saved_model_v2), "processor": "tensorflow_cpu_2.7"}),
        )
        assert rc == 0, err
        assert "has a new version 2" in out and "[OK] Service is running" in out
        assert not np.allclose(service.predict(x), v1, atol=1e-4)  # the new version answers now
    finally:
        codes = load.stop()
    try:
        assert set(codes) == {200}, codes
        assert sum(codes.values()) > 20
        rc, out, _ = cli("eascmd", "desc", service.name)
        assert re.search(r"\| LatestVersion +\| 2 +\|", out) and re.search(r"\| CurrentVersion +\| 2 +\|", out)
        assert re.search(rf"\| IntranetEndpoint +\| {re.escape(service.endpoint)} +\|", out)
    finally:
        service.delete()


def test_scaling_keeps_instances_and_a_killed_instance_comes_back(echo_service, cli):
    first = echo_service.instances()
    assert len(first) == 1
    rc, _out, err = cli("eascmd", "modify", echo_service.name, "-Dmetadata.instance=2")
    assert rc == 0, err
    instances = {i.name: i for i in echo_service.instances()}
    assert len(instances) == 2 and first[0].name in instances and instances[first[0].name].pid == first[0].pid

    body = json.dumps({"values": [1], "sleep": 0.01}).encode()
    load = Load(echo_service.endpoint, body, {"Authorization": echo_service.token}, threads=4)
    time.sleep(0.5)
    os.kill(first[0].pid, signal.SIGKILL)
    seen = []  # each poll reads the instance once: what `eascmd w` shows at one moment

    def back() -> bool:
        seen.append({i.name: i for i in echo_service.instances()}[first[0].name])
        return seen[-1].ready == "[1/1]" and seen[-1].restarts == 1

    assert wait_for(back)
    # while it restarts (one restart counted, not ready) it shows no process that ended, and is not Running
    restarting = [i for i in seen if i.restarts == 1 and i.ready == "[0/1]"]
    assert all(i.pid != first[0].pid and i.status != "Running" for i in restarting), restarting
    time.sleep(0.5)
    codes = load.stop()
    again = {i.name: i for i in echo_service.instances()}[first[0].name]
    assert again.pid != first[0].pid and again.ready == "[1/1]"
    assert again.last_state["exitCode"] == 137 and again.last_state["reason"] == "Error"
    # only what the killed instance held can fail: at most one request per load thread
    assert codes[200] > 0 and sum(n for c, n in codes.items() if c != 200) <= 4, codes
    # the table a user reads: the restarted instance Running and ready, one restart, its last state kept
    row = rf"\| {first[0].name} +\|.*\| 1 +\| Running +\| \[1/1\]"
    table = {}

    def shown() -> bool:
        table["out"] = cli("eascmd", "w", echo_service.name)[1]
        return bool(re.search(row, table["out"])) and '"exitCode":137' in table["out"]

    assert wait_for(shown, timeout=30), table.get("out")
    rc, _, _ = cli("eascmd", "modify", echo_service.name, "-Dmetadata.instance=1")
    assert rc == 0
    assert wait_for(lambda: len(echo_service.instances()) == 1)


def wait_for(condition, timeout: float = 60) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return True
        time.sleep(0.3)
    return False


def test_deleting_an_instance_replaces_it(slow_service, cli):
    (old,) = slow_service.instances()
    rc, out, _err = cli("eascmd", "dw", slow_service.name, old.name, "-y")
    assert rc == 0 and f"Instance(s) [{old.name}] for service [{slow_service.name}]" in out
    assert wait_for(
        lambda: (
            [i.name for i in slow_service.instances()] not in ([old.name], [])
            and len(slow_service.instances()) == 1
            and slow_service.instances()[0].ready == "[1/1]"
        )
    )
    assert slow_service.predict({"values": [1, 1]}) == {"sum": 2, "n": 2}


def gated(svc, values: list, gate=None):
    """A request the gate processor holds until ``gate`` exists (no timeout of the caller's own)."""
    body = {"values": values, **({"gate": str(gate)} if gate else {})}
    return requests.post(svc.endpoint, data=json.dumps(body), headers={"Authorization": svc.token}, timeout=600)


def test_a_full_queue_answers_450_and_a_slow_request_408(ws, gate_processor, tmp_path):
    def create(keepalive: int):
        return ws.services.create(
            {
                "name": f"gate_{uuid.uuid4().hex[:8]}",
                "processor_type": "python",
                "processor_path": str(gate_processor),
                "processor_entry": "app.py",
                "metadata": {"instance": 1, "workers": 1, "rpc": {"max_queue_size": 2, "keepalive": keepalive}},
            }
        )

    # one worker held by the gate, two requests in its queue: the next is refused at once with 450
    queue = create(keepalive=600_000)  # longer than any wait here: only the gate decides
    opened = tmp_path / "open"
    try:
        with ThreadPoolExecutor(3) as pool:
            held = pool.submit(gated, queue, [1], opened)
            until(lambda: gauge(queue, "pai_serving_inflight") == 1)
            waiting = [pool.submit(gated, queue, [2, i]) for i in range(2)]
            until(lambda: gauge(queue, "pai_serving_queue_depth") == 2)
            full = gated(queue, [3])
            assert full.status_code == 450 and full.reason == "Queue Full", full.text
            assert "rpc.max_queue_size=2" in full.text
            opened.touch()
            answers = [f.result() for f in (held, *waiting)]
        assert [a.status_code for a in answers] == [200, 200, 200]
        assert [a.json()["sum"] for a in answers] == [1, 2, 3]
    finally:
        queue.delete()

    # a request still held when rpc.keepalive runs out is answered 408; the instance goes on after it
    slow = create(keepalive=3000)
    opened = tmp_path / "open_later"
    try:
        answer = gated(slow, [1], opened)
        assert answer.status_code == 408 and "rpc.keepalive=3000 ms" in answer.text
        opened.touch()  # the instance finishes the abandoned request
        until(lambda: gauge(slow, "pai_serving_inflight") == 0)
        assert slow.predict({"values": [4]}) == {"sum": 4, "n": 1}
    finally:
        slow.delete()


def test_stop_and_start(slow_service, cli):
    rc, out, _ = cli("eascmd", "stop", slow_service.name)
    assert rc == 0 and "[OK] Service is stopped" in out
    assert post(slow_service, {"values": [1]}).status_code == 503
    rc, out, _ = cli("eascmd", "ls", "--json")
    assert next(s for s in json.loads(out) if s["name"] == slow_service.name)["state"] == "Stopped"
    rc, out, _ = cli("eascmd", "start", slow_service.name)
    assert rc == 0 and "[OK] Service is running" in out
    assert slow_service.predict({"values": [2, 2]}) == {"sum": 4, "n": 2}


def test_cell_magic_creates_a_service_and_the_proxy_reaches_it(live_server, python_processor, monkeypatch):
    from IPython.core.interactiveshell import InteractiveShell

    from pai_lab.magics import PaiMagics

    monkeypatch.setenv("PAI_LAB_URL", live_server.url)
    monkeypatch.setenv("PAI_LAB_TOKEN", live_server.token)
    shell = InteractiveShell.instance()
    shell.register_magics(PaiMagics)
    name = f"magic_{uuid.uuid4().hex[:8]}"
    cell = json.dumps(
        {
            "name": name,
            "processor_type": "python",
            "processor_path": str(python_processor),
            "processor_entry": "app.py",
            "generate_token": "false",
            "metadata": {"instance": 1},
        }
    )
    shell.run_cell_magic("pai", "eascmd create", cell)
    table = shell.run_line_magic("pai", "eascmd ls")
    assert table.set_index("name").loc[name, "state"] == "Running"
    # through the Jupyter server's port, with the server's own authentication
    url = f"{live_server.url.rstrip('/')}/pai-lab/api/v1/workspaces/default/services/{name}/predict"
    answer = requests.post(
        url, data=json.dumps({"values": [5, 6]}), headers={"Authorization": f"token {live_server.token}"}
    )
    assert answer.status_code == 200 and answer.json() == {"sum": 11, "n": 2}
    assert requests.post(url, data=b"{}").status_code in (401, 403)
    shell.run_line_magic("pai", f"eascmd delete {name} -y")


def test_service_panel_shows_state_instances_and_answers(tf_service):
    panel = tf_service.panel(refresh_seconds=0)
    assert tf_service.name in panel.header.value and "Running" in panel.header.value
    assert tf_service.instances()[0].name in panel.instances.value
    panel.request.value = "[[0.0, 1.0, 2.0, 3.0]]"
    panel.try_request()
    assert len(json.loads(panel.answer.value.removeprefix("<pre>").removesuffix("</pre>"))[0]) == 2
    panel.close()


def test_warm_up_requests_run_before_the_instance_takes_traffic(ws, python_processor, tmp_path):
    from prometheus_client.parser import text_string_to_metric_families

    warm_up = tmp_path / "warm_up.txt"
    warm_up.write_text('{"values": [1]}\n{"values": [2, 3]}\n')
    name = f"warm_{uuid.uuid4().hex[:8]}"
    svc = ws.services.create({**echo_spec(name, python_processor), "warm_up_data_path": str(warm_up)})
    try:
        text = requests.get(gateway_of(svc.endpoint) + "/metrics").text
        calls = sum(
            s.value
            for f in text_string_to_metric_families(text)
            if f.name == "pai_serving_batch_size"
            for s in f.samples
            if s.name.endswith("_count") and s.labels["service"] == name
        )
        assert calls == 10  # each of the 2 requests 5 times, all before the service counted as Running
        assert svc.predict({"values": [7]}) == {"sum": 7, "n": 1}
    finally:
        svc.delete()


def test_prelabels_from_the_deployed_service_are_suggestions_not_answers(ws, tf_service, in_process_model):
    rng = np.random.default_rng(5)
    features = rng.normal(size=(12, 4)).round(3).astype(np.float32)
    task = ws.labeling.create_task(
        f"pre_{uuid.uuid4().hex[:8]}",
        "image-classification",
        labels=["neg", "pos"],
        lines=[{"data": {"source": f"{i}.jpg", "features": f.tolist()}} for i, f in enumerate(features)],
    )
    try:
        attached = task.prelabel_from_service(
            tf_service.name,
            lambda data, scores: ["neg", "pos"][int(np.argmax(scores))],
            inputs=lambda data: np.array([data["features"]], dtype=np.float32),
            progress=False,
        )
        assert attached == 12

        expected = [["neg", "pos"][i] for i in in_process_model(features).argmax(axis=1)]  # the model itself
        items = task.all_items()
        suggested = [item.prelabel[0]["data"] for item in items]
        assert suggested == expected
        assert {item.prelabel_source for item in items} == {f"service:{tf_service.name}"}
        assert all(item.label is None for item in items)
        assert task.stats().labeled == 0
    finally:
        task.delete()


BATCH_PROCESSOR = textwrap.dedent("""
    import json, time


    class Summer:
        def process(self, data):
            return self.process_batch([data])[0]

        def process_batch(self, datas):
            time.sleep(0.05)  # a model call costs the same for one request or many: batching pays
            requests = [json.loads(d) for d in datas]
            if any(r.get("short") for r in requests):
                return []
            return [{"sum": sum(r["values"]), "batch": len(datas)} for r in requests]
""")


def test_a_python_processor_with_process_batch_gets_batches_and_each_caller_its_own_answer(ws, tmp_path):
    (tmp_path / "app.py").write_text(BATCH_PROCESSOR)
    svc = ws.services.create(
        {
            "name": f"summer_{uuid.uuid4().hex[:8]}",
            "processor_type": "python",
            "processor_path": str(tmp_path),
            "processor_entry": "app.py",
            "metadata": {
                "instance": 1,
                "workers": 1,
                "rpc": {"batching": True, "max_batch_size": 8, "max_batch_timeout": 50},
            },
        }
    )
    try:
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda i: (i, svc.predict({"values": [i, i, 1]})), range(32)))
        assert all(answer["sum"] == 2 * i + 1 for i, answer in answers)  # nobody got a neighbour's answer
        sizes = [answer["batch"] for _, answer in answers]
        assert max(sizes) > 1 and max(sizes) <= 8
    finally:
        svc.delete()

    from pai_lab.serving.processors import ProcessorError, PythonProcessor

    processor = PythonProcessor(str(tmp_path), "app.py", None, None, None)
    assert processor.batchable
    with pytest.raises(ProcessorError, match="one answer per request, in order: got 0 for 2 requests"):
        processor.process_batch([b'{"values": [1], "short": true}', b'{"values": [2]}'])
