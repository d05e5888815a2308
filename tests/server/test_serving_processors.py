"""Processors beyond TensorFlow, each with a real model of its kind served by a real `pai server`:
ONNX (onnxruntime; a model built here with onnx.helper), PMML (the logisticregression_binary
pipeline component's own export, evaluated by pypmml), EasyVision (image bytes in, class names and
boxes out), and the keys of the service JSON that mean nothing locally, answered as warnings."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import textwrap
import uuid

import numpy as np
import pytest
import requests

from tests.fixtures.serving import COLOURS, gateway_of, png_bytes

ONNX_W = np.array([[1.0, -2.0], [0.5, 0.0], [-1.0, 3.0]], dtype=np.float32)
ONNX_B = np.array([0.25, -0.5], dtype=np.float32)


@pytest.fixture(scope="module")
def ws(live_server):
    return live_server.client().workspace("default")


def name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def post(svc, body: bytes, **headers):
    return requests.post(svc.endpoint, data=body, headers={"Authorization": svc.token, **headers}, timeout=60)


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory):
    """y = x @ W + b, x: float [N, 3] -> y: float [N, 2], as an ONNX file in a folder."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "B"], ["y"])],
        "affine",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])],
        [numpy_helper.from_array(ONNX_W, "W"), numpy_helper.from_array(ONNX_B, "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8  # readable by every onnxruntime the onnx extra allows
    onnx.checker.check_model(model)
    folder = tmp_path_factory.mktemp("onnx")
    onnx.save(model, str(folder / "affine.onnx"))
    return folder


def test_an_onnx_model_answers_over_eas_json_protobuf_v2_and_the_official_client(ws, onnx_model, eas_prediction_python):
    from pai_lab.serving.protocols import eas_pb

    svc = ws.services.create(
        {
            "name": name("onnx"),
            "model_path": str(onnx_model),
            "processor": "onnx",
            "metadata": {"instance": 1, "rpc": {"batching": True}},
        }
    )
    try:
        x = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
        expected = x @ ONNX_W + ONNX_B
        assert np.allclose(svc.predict(x), expected, atol=1e-5)
        signature = requests.get(svc.endpoint, headers={"Authorization": svc.token}).json()
        assert signature["inputs"] == [{"name": "x", "shape": [-1, 3], "type": "DT_FLOAT"}]
        assert signature["outputs"] == [{"name": "y", "shape": [-1, 2], "type": "DT_FLOAT"}]

        request = eas_pb.PredictRequest()
        eas_pb.fill_array(request.inputs["x"], x)
        response = eas_pb.PredictResponse()
        response.ParseFromString(post(svc, request.SerializeToString()).content)
        assert np.allclose(eas_pb.array_to_numpy(response.outputs["y"]), expected, atol=1e-5)

        infer = requests.post(
            gateway_of(svc.endpoint) + f"/v2/models/{svc.name}/infer",
            headers={"Authorization": svc.token},
            json={"inputs": [{"name": "x", "shape": [4, 3], "datatype": "FP32", "data": x.ravel().tolist()}]},
        ).json()
        assert np.allclose(np.reshape(infer["outputs"][0]["data"], (4, 2)), expected, atol=1e-5)

        bad = post(svc, json.dumps({"inputs": {"x": [[1.0, 2.0]]}}).encode())
        assert bad.status_code == 400 and "'x'" in bad.text and "[-1, 3]" in bad.text

        script = textwrap.dedent(f"""
            import json
            from eas_prediction import PredictClient, TFRequest
            client = PredictClient({gateway_of(svc.endpoint)!r}, {svc.name!r})
            client.set_token({svc.token!r})
            client.init()
            request = TFRequest("serving_default")
            request.add_feed("x", [4, 3], TFRequest.DT_FLOAT, {x.ravel().tolist()!r})
            print(json.dumps(list(client.predict(request).get_values("y"))))
        """)
        done = subprocess.run([eas_prediction_python, "-c", script], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        values = json.loads(done.stdout.strip().splitlines()[-1])
        assert np.allclose(np.reshape(values, (4, 2)), expected, atol=1e-5)
    finally:
        svc.delete()


@pytest.mark.tf
async def test_model_files_are_checked_at_create(api, onnx_model, colour_model, tmp_path):
    folder = tmp_path / "two"
    folder.mkdir()
    for file in ("a.onnx", "b.onnx"):
        (folder / file).write_bytes((onnx_model / "affine.onnx").read_bytes())
    body = {"name": "onnx_two", "model_path": str(folder), "processor": "onnx", "metadata": {"instance": 0}}
    status, answer = await api("POST", "/workspaces/default/services", body)
    assert status == 400 and answer["error"]["field"] == "model_entry", answer
    assert "2 .onnx file(s)" in answer["error"]["message"]
    status, created = await api("POST", "/workspaces/default/services", {**body, "model_entry": "b.onnx"})
    assert status == 201, created
    status, answer = await api(
        "POST",
        "/workspaces/default/services",
        {
            "name": "ev_threshold",
            "model_path": str(colour_model),
            "processor": "easyvision",
            "model_config": {"score_threshold": "high"},
            "metadata": {"instance": 0},
        },
    )
    assert status == 400 and answer["error"]["field"] == "model_config.score_threshold", answer
    status, answer = await api(
        "POST",
        "/workspaces/default/services",
        {"name": "pmml_none", "model_path": str(onnx_model), "processor": "pmml", "metadata": {"instance": 0}},
    )
    assert status == 400 and answer["error"]["field"] == "model_path" and ".pmml" in answer["error"]["message"]


async def test_pytorch_without_torch_is_refused_with_the_install_line(api, onnx_model):
    try:
        import torch  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("torch is installed here: the pytorch processor is available")
    status, answer = await api(
        "POST",
        "/workspaces/default/services",
        {
            "name": "torch_svc",
            "model_path": str(onnx_model),
            "processor": "pytorch_cpu_1.10",
            "metadata": {"instance": 0},
        },
    )
    assert status == 400 and answer["error"]["field"] == "processor", answer
    assert 'pip install "pai_lab[torch]"' in answer["error"]["message"]


# ------------------------------------------------------------------------------------------ PMML


@pytest.fixture(scope="module")
def pmml_model(live_server, tmp_path_factory):
    """The logisticregression_binary component's PMMLOutput, from a one-step pipeline run on the server."""
    import pandas as pd

    from pai_lab.pipelines import MetadataBuilder, Pipeline, PipelineArtifact, PipelineStep, ProviderAlibabaPAI

    rng = np.random.default_rng(5)
    x = rng.normal(size=(200, 2))
    table = tmp_path_factory.mktemp("pmml") / "train.csv"
    pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "y": (2 * x[:, 0] - x[:, 1] > 0).astype(int)}).to_csv(table, index=False)
    with pytest.MonkeyPatch.context() as env:  # the SDK finds the server as a notebook would
        env.setenv("PAI_LAB_URL", live_server.url)
        env.setenv("PAI_LAB_TOKEN", live_server.token)
        data = PipelineArtifact("inputTable", metadata=MetadataBuilder.maxc_table(), required=True)
        step = PipelineStep(
            "logisticregression_binary",
            name="lr-1",
            provider=ProviderAlibabaPAI,
            version="v1",
            inputs={
                "inputTable": data,
                "featureColNames": "a,b",
                "labelColName": "y",
                "goodValue": 1,
                "generatePmml": True,
            },
        )
        pipeline = Pipeline(steps=[step], outputs={"pmmlModel": step.outputs["PMMLOutput"]})
        run = pipeline.run(
            job_name="pmml_export", arguments={"inputTable": str(table)}, wait=True, show_outputs=False, timeout=300
        )
    assert run.detail.status == "Succeeded", run.detail.reason
    exported = next(o for o in run.get_outputs() if o.name == "pmmlModel").uri[len("file://") :]
    # the run's files are the server's own state, never a member's path: the user takes a copy
    return str(shutil.copy(exported, table.parent / "model.pmml"))


def test_the_pipelines_pmml_export_is_served_with_the_pmml_processor(ws, pmml_model, eas_prediction_python):
    svc = ws.services.create(
        {"name": name("pmml"), "model_path": pmml_model, "processor": "pmml", "metadata": {"instance": 1}}
    )
    try:
        one = post(svc, json.dumps({"a": 2.0, "b": -1.0}).encode())
        assert one.status_code == 200, one.text
        answer = one.json()
        assert answer["predicted_y"] == "1" and answer["probability_1"] > 0.9
        assert abs(answer["probability_1"] + answer["probability_other"] - 1) < 1e-9
        many = post(svc, json.dumps([{"a": 2.0, "b": -1.0}, {"a": -2.0, "b": 1.0}]).encode()).json()
        assert [r["predicted_y"] for r in many] == ["1", "other"]
        assert svc.predict({"a": -2.0, "b": 1.0})["predicted_y"] == "other"  # the client sends the body as it is
        bad = post(svc, b"a=1")
        assert bad.status_code == 400 and "JSON object of the model's inputs (a, b)" in bad.text

        script = textwrap.dedent(f"""
            from eas_prediction import PredictClient, StringRequest
            client = PredictClient({gateway_of(svc.endpoint)!r}, {svc.name!r})
            client.set_token({svc.token!r})
            client.init()
            print(client.predict(StringRequest('[{{"a": 2.0, "b": -1.0}}]')).response_data.decode())
        """)
        done = subprocess.run([eas_prediction_python, "-c", script], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        assert json.loads(done.stdout.strip().splitlines()[-1])[0]["predicted_y"] == "1"
    finally:
        svc.delete()


# ------------------------------------------------------------------------------------ EasyVision

DETECTOR_SCRIPT = textwrap.dedent("""
    import json, os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    import tensorflow as tf

    class Boxes(tf.Module):
        # PNG bytes in; slot 0 holds a box of the image's strongest colour, scored by its mean; slot 1 is empty
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
        def serve(self, image_bytes):
            def mean_colour(data):
                image = tf.image.resize(tf.cast(tf.io.decode_png(data, channels=3), tf.float32) / 255.0, (8, 8))
                return tf.reduce_mean(image, axis=[0, 1])

            means = tf.map_fn(mean_colour, image_bytes, fn_output_signature=tf.float32)
            n = tf.shape(means)[0]
            boxes = tf.tile(tf.constant([[[0.1, 0.2, 0.5, 0.6], [0.0, 0.0, 1.0, 1.0]]]), [n, 1, 1])
            scores = tf.stack([tf.reduce_max(means, axis=-1), tf.zeros([n])], axis=1)
            classes = tf.stack([tf.argmax(means, axis=-1), tf.zeros([n], tf.int64)], axis=1)
            return {"detection_boxes": boxes, "detection_scores": scores, "detection_classes": classes}

    model = Boxes()
    tf.saved_model.save(model, sys.argv[1], signatures={"serving_default": model.serve})
    with open(os.path.join(sys.argv[1], "class_names.json"), "w") as f:
        json.dump(["red", "green", "blue"], f)
""")


@pytest.fixture(scope="module")
def detector_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("boxes") / "model"
    subprocess.run(
        [sys.executable, "-c", DETECTOR_SCRIPT, str(folder)],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=300,
    )
    return folder


@pytest.mark.tf
def test_easyvision_classifies_raw_and_base64_images_with_class_names(ws, colour_model, eas_prediction_python):
    svc = ws.services.create(
        {
            "name": name("ev_cls"),
            "model_path": str(colour_model),
            "processor": "easy_vision_cpu_tf1.12_torch151",
            "metadata": {"instance": 1, "rpc": {"batching": True}},
        }
    )
    try:
        assert svc.class_names == ["red", "green", "blue"]
        raw = post(svc, png_bytes(COLOURS["green"]))
        assert raw.status_code == 200, raw.text
        answer = raw.json()
        assert answer["class_name"] == "green" and answer["class"] == 1
        assert set(answer["class_probs"]) == {"red", "green", "blue"}
        assert post(svc, base64.b64encode(png_bytes(COLOURS["blue"]))).json()["class_name"] == "blue"
        several = post(
            svc,
            json.dumps(
                {"images": [base64.b64encode(png_bytes(COLOURS[c])).decode() for c in ("red", "blue")]}
            ).encode(),
        ).json()
        assert [a["class_name"] for a in several] == ["red", "blue"]
        assert svc.predict({"image": base64.b64encode(png_bytes(COLOURS["red"])).decode()})["class_name"] == "red"
        bad = post(svc, b"not an image")
        assert bad.status_code == 400 and "base64" in bad.text

        png = list(png_bytes(COLOURS["red"]))
        script = textwrap.dedent(f"""
            import json
            from eas_prediction import PredictClient, StringRequest
            client = PredictClient({gateway_of(svc.endpoint)!r}, {svc.name!r})
            client.set_token({svc.token!r})
            client.init()
            print(client.predict(StringRequest(bytes({png!r}))).response_data.decode())
        """)
        done = subprocess.run([eas_prediction_python, "-c", script], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        assert json.loads(done.stdout.strip().splitlines()[-1])["class_name"] == "red"
    finally:
        svc.delete()


@pytest.mark.tf
def test_easyvision_answers_a_detectors_boxes_with_label_names(ws, detector_model):
    svc = ws.services.create(
        {
            "name": name("ev_det"),
            "model_path": str(detector_model),
            "processor": "easyvision",
            "metadata": {"instance": 1},
        }
    )
    try:
        answer = post(svc, png_bytes(COLOURS["blue"])).json()
        assert answer["detection_class_names"] == ["blue"] and answer["detection_classes"] == [2]
        assert np.allclose(answer["detection_boxes"], [[0.1, 0.2, 0.5, 0.6]]) and answer["detection_scores"][0] > 0.5
    finally:
        svc.delete()


@pytest.mark.tf
def test_easyvision_refuses_a_model_that_takes_no_images_at_once(ws, saved_model):
    # what a SavedModel takes is known once an instance loads it: the failure is fatal, not retried
    spec = {
        "name": name("ev_wrong"),
        "model_path": str(saved_model),
        "processor": "easyvision",
        "metadata": {"instance": 1},
    }
    with pytest.raises(Exception, match="takes encoded images"):
        ws.services.create(spec)
    ws.services.get(spec["name"]).delete()


# ------------------------------------------------------------------------------ no-op keys


async def test_keys_that_mean_nothing_here_are_validated_and_answered_with_why(api, onnx_model):
    base = {"name": "noops", "model_path": str(onnx_model), "processor": "onnx"}
    refused = (
        ({"gpu_memory": -1}, "metadata.gpu_memory"),
        ({"qos": "Fast"}, "metadata.qos"),
        ({"rpc": {"io_threads": 0}}, "metadata.rpc.io_threads"),
        ({"resource": 5}, "metadata.resource"),
    )
    for meta, field in refused:
        body = {**base, "metadata": {"instance": 0, **meta}}
        status, answer = await api("POST", "/workspaces/default/services", body)
        assert status == 400 and answer["error"]["field"] == field, (meta, answer)
    status, created = await api(
        "POST",
        "/workspaces/default/services",
        {
            **base,
            "metadata": {
                "instance": 0,
                "gpu_memory": 8,
                "qos": "BestEffort",
                "resource": "eas-r-6dbzve8ip0xnzte5rp",
                "rpc.io_threads": 8,
            },
        },
    )
    assert status == 201, created
    warnings = created["warnings"]
    for key in ("metadata.gpu_memory", "metadata.qos", "metadata.resource", "metadata.rpc.io_threads"):
        assert any(w.startswith(key + " is ignored: ") for w in warnings), (key, warnings)
    status, changed = await api("PATCH", "/workspaces/default/services/noops", {"metadata": {"qos": ""}})
    assert status == 200 and not any(w.startswith("metadata.qos") for w in changed["warnings"])
    status, shown = await api("GET", "/workspaces/default/services/noops")
    assert shown["warnings"] == changed["warnings"]
