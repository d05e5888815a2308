"""Serving in the loop (issue 13): a model saved with its class list answers with label names in
every protocol, raw image bytes go in as {"b64": ...}, and what a training job produced is
deployed by the job or by `job.model`. Real `pai server`, gateway, instances and TensorFlow."""

from __future__ import annotations

import base64
import json
import uuid

import numpy as np
import pytest
import requests

from tests.fixtures.serving import COLOURS, gateway_of, png_bytes

pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def ws(live_server):
    return live_server.client().workspace("default")


@pytest.fixture(scope="module")
def colour_service(ws, colour_model):
    svc = ws.services.deploy(str(colour_model), name=f"colours_{uuid.uuid4().hex[:6]}", progress=False)
    yield svc
    svc.delete()


def test_class_names_give_label_and_score_in_eas_tf_serving_and_v2(colour_service, live_server):
    svc = colour_service
    assert svc.class_names == ["red", "green", "blue"]
    images = [png_bytes(COLOURS["red"]), png_bytes(COLOURS["blue"], (30, 7)), png_bytes(COLOURS["green"])]

    # the client sends raw bytes as {"b64": ...}; the gateway decodes them for the tf.string input
    out = svc.predict({"image_bytes": images})
    assert out["label"].tolist() == ["red", "blue", "green"]
    assert out["probabilities"].shape == (3, 3)
    np.testing.assert_allclose(out["score"], out["probabilities"].max(axis=1), rtol=1e-6)
    assert (out["score"] > 0.9).all()

    headers = {"Authorization": svc.token}
    b64 = [{"b64": base64.b64encode(i).decode()} for i in images]
    answer = requests.post(
        svc.endpoint, json={"inputs": {"image_bytes": b64[:1]}, "output_filter": ["label"]}, headers=headers, timeout=60
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"outputs": {"label": ["red"]}}

    base = gateway_of(svc.endpoint)
    answer = requests.post(
        f"{base}/v1/models/{svc.name}:predict", json={"instances": b64[1:]}, headers=headers, timeout=60
    )
    assert answer.status_code == 200, answer.text
    rows = answer.json()["predictions"]
    assert [r["label"] for r in rows] == ["blue", "green"] and all(r["score"] > 0.9 for r in rows)
    assert len(rows[0]["probabilities"]) == 3

    # Open Inference v2 with Triton's binary tensors (BYTES: 4-byte little-endian length, then the bytes)
    blob = len(images[2]).to_bytes(4, "little") + images[2]
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": "image_bytes",
                    "shape": [1],
                    "datatype": "BYTES",
                    "parameters": {"binary_data_size": len(blob)},
                }
            ]
        }
    ).encode()
    answer = requests.post(
        f"{base}/v2/models/{svc.name}/infer",
        data=head + blob,
        timeout=60,
        headers={**headers, "Inference-Header-Content-Length": str(len(head))},
    )
    assert answer.status_code == 200, answer.text
    outputs = {o["name"]: o for o in answer.json()["outputs"]}
    assert outputs["label"]["data"] == ["green"] and outputs["label"]["datatype"] == "BYTES"
    assert outputs["score"]["data"][0] > 0.9

    # the signature lists the added outputs, so TF Serving and v2 clients see them in the metadata
    signature = svc.signature()
    assert {"label", "score", "probabilities"} <= {o["name"] for o in signature["outputs"]}

    # TensorFlow's C++ start-up lines are kept out of the instance's log
    for inst in svc.instances():
        log = (live_server.root / ".pai_lab" / "serving" / "logs" / f"{inst.name}.log").read_text()
        assert "cuInit" not in log and "oneDNN" not in log and "absl::InitializeLog" not in log, log[-2000:]


def test_service_html_shows_its_facts_escaped(colour_service):
    page = colour_service._repr_html_()
    assert colour_service.name in page and "Running" in page and "1/1 ready" in page
    assert "red, green, blue" in page and colour_service.endpoint in page
    assert "versions" in page and "(current)" in page
    inst = colour_service.instances()[0]
    assert inst.name in page
    colour_service.info.message = "<script>alert(1)</script>"
    assert "<script>" not in colour_service._repr_html_()


def test_a_training_jobs_model_is_deployed_by_the_job_and_by_job_model(ws, colour_model):
    # a job whose command writes a SavedModel (with its class list) where the chief saves models; the
    # job's flags (--job_name...) are appended to the command, so it ends with an echo that takes them
    job = ws.jobs.submit(
        name="colours",
        workers=1,
        command=f'mkdir -p "$PAI_LAB_MODEL_DIR" && cp -r {colour_model}/. "$PAI_LAB_MODEL_DIR" && echo',
    )
    job.wait(timeout=240, poll=0.5)
    assert job.state == "Succeeded", job.reason
    assert job.model and job.model.startswith("colours:")

    by_ref = ws.services.deploy(job.model, name=f"by_model_{uuid.uuid4().hex[:6]}", progress=False)
    by_job = ws.services.deploy(job, name=f"by_job_{uuid.uuid4().hex[:6]}", instance=0, progress=False)
    try:
        assert by_ref.info.model_dir == by_job.info.model_dir == ws.models.get(job.model).path
        assert by_ref.class_names == by_job.class_names == ["red", "green", "blue"]
        assert by_ref.predict({"image_bytes": [png_bytes(COLOURS["blue"])]})["label"].tolist() == ["blue"]
    finally:
        by_ref.delete()
        by_job.delete()


def test_a_job_without_a_model_is_refused_with_the_field(ws):
    from pai_lab.errors import BadInput

    with pytest.raises(BadInput) as err:
        ws.services.deploy(None, name="nothing_here", progress=False)
    assert err.value.field == "model"


def test_service_panel_charts_live_qps_and_latency_from_the_gateway(colour_service):
    panel = colour_service.panel(refresh_seconds=0)
    try:
        for _ in range(4):
            colour_service.predict({"image_bytes": [png_bytes(COLOURS["red"])]})
        panel.refresh()
        assert panel.qps[-1] > 0 and panel.latency[-1] > 0
        assert panel.charts.value.count("<svg") == 2 and "<polyline" not in panel.charts.value  # one point yet
        panel.refresh()  # nothing asked meanwhile: the rate falls to 0 and the line has two points
        assert panel.qps[-1] == 0 and panel.charts.value.count("<polyline") == 2
        assert "QPS: 0.0 req/s" in panel.charts.value
    finally:
        panel.close()
