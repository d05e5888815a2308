"""The service JSON and the request formats, checked without starting anything."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from pai_lab.errors import BadInput
from pai_lab.serving import deploy
from pai_lab.serving.gateway.service_runtime import Route
from pai_lab.serving.protocols import eas, eas_pb, fit_inputs, tfserving, v2

SIGNATURE = {
    "signature_name": "predict_images",
    "inputs": [{"name": "images", "shape": [-1, 4], "type": "DT_FLOAT"}],
    "outputs": [{"name": "scores", "shape": [-1, 2], "type": "DT_FLOAT"}],
}


def test_the_manuals_service_json_gets_eas_defaults():
    spec = deploy.parse_spec(
        {
            "name": "mnist_saved_model_example",
            "generate_token": "true",
            "model_path": "/models/mnist",
            "processor": "tensorflow_cpu_1.12",
            "metadata": {"instance": 1, "cpu": 1},
        }
    )
    assert spec.generate_token is True
    assert spec.metadata.workers == 5
    rpc = spec.metadata.rpc
    assert (rpc.batching, rpc.keepalive, rpc.max_batch_size, rpc.max_batch_timeout, rpc.max_queue_size) == (
        False,
        5000,
        16,
        50,
        64,
    )


def test_flat_rpc_keys_are_read_like_nested_ones():
    spec = deploy.parse_spec(
        {"name": "svc", "metadata": {"instance": 2, "rpc.batching": True, "rpc.max_queue_size": 8}}
    )
    assert spec.metadata.rpc.batching is True and spec.metadata.rpc.max_queue_size == 8


@pytest.mark.parametrize(
    "data, field",
    [
        ({"name": "svc", "metadata": {"instance": 1}, "model_pth": "/m"}, "model_pth"),
        ({"name": "svc", "metadata": {"instance": 1, "replicas": 2}}, "metadata.replicas"),
        ({"name": "svc", "metadata": {"instance": 1, "rpc": {"batch": True}}}, "metadata.rpc.batch"),
    ],
)
def test_unknown_keys_are_refused_by_name(data, field):
    with pytest.raises(BadInput) as err:
        deploy.parse_spec(data)
    assert err.value.field == field and repr(field) in err.value.message


def test_missing_instance_and_bad_names_are_explained():
    with pytest.raises(BadInput) as err:
        deploy.parse_spec({"name": "svc", "metadata": {}})
    assert err.value.field == "metadata.instance" and "required" in err.value.message
    with pytest.raises(BadInput) as err:
        deploy.parse_spec({"name": "My-Service", "metadata": {"instance": 1}})
    assert err.value.field == "name" and "lowercase" in err.value.message


def test_tokens_look_like_eas_tokens():
    token = deploy.new_token()
    assert len(token) == 56
    decoded = base64.b64decode(token).decode()
    assert len(decoded) == 40 and all(c in "0123456789abcdef" for c in decoded)


def test_weighted_routing_gives_exact_shares():
    route = Route("t", {"old": 70, "new": 30})
    picks = [route.choose() for _ in range(2000)]
    assert picks.count("new") == 600


def test_inputs_that_do_not_fit_name_the_input_and_the_shape():
    with pytest.raises(BadInput) as err:
        fit_inputs(SIGNATURE, {"images": [[1.0, 2.0, 3.0]]})
    assert err.value.field == "images" and "[-1, 4]" in err.value.message and "DT_FLOAT" in err.value.message
    with pytest.raises(BadInput) as err:
        fit_inputs(SIGNATURE, {"pixels": [[1.0] * 4]})
    assert "images" in err.value.message
    assert fit_inputs(SIGNATURE, {"images": [[1, 2, 3, 4]]})["images"].dtype == np.float32


def test_tf_serving_row_columnar_and_b64_bodies():
    x = [[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]
    _, inputs, style = tfserving.parse(json.dumps({"instances": x}).encode(), ["images"])
    assert style == "row" and np.asarray(inputs["images"]).shape == (2, 4)
    _, inputs, style = tfserving.parse(json.dumps({"inputs": {"images": x}}).encode(), ["images"])
    assert style == "columnar" and inputs["images"] == x
    _, inputs, _ = tfserving.parse(
        json.dumps({"instances": [{"b64": base64.b64encode(b"\x00\x01").decode()}]}).encode(), ["image_bytes"]
    )
    assert inputs["image_bytes"] == [b"\x00\x01"]
    with pytest.raises(BadInput):
        tfserving.parse(json.dumps({"instances": x, "inputs": x}).encode(), ["images"])
    out = {"scores": np.array([[0.25, 0.75], [0.5, 0.5]], dtype=np.float32)}
    assert json.loads(tfserving.format(out, "row")) == {"predictions": [[0.25, 0.75], [0.5, 0.5]]}
    assert json.loads(tfserving.format(out, "columnar")) == {"outputs": [[0.25, 0.75], [0.5, 0.5]]}


def test_v2_binary_tensors_round_trip():
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    head = json.dumps(
        {
            "inputs": [
                {"name": "images", "shape": [2, 4], "datatype": "FP32", "parameters": {"binary_data_size": x.nbytes}}
            ],
            "outputs": [{"name": "scores", "parameters": {"binary_data": True}}],
        }
    ).encode()
    inputs, wanted, binary, _ = v2.parse(head + x.tobytes(), str(len(head)))
    assert np.array_equal(inputs["images"], x) and wanted == ["scores"] and binary == {"scores"}
    body, headers = v2.format("m", 1, {"scores": x}, binary, None)
    n = int(headers["Inference-Header-Content-Length"])
    doc = json.loads(body[:n])
    assert doc["outputs"][0]["shape"] == [2, 4]
    assert np.array_equal(np.frombuffer(body[n:], dtype=np.float32).reshape(2, 4), x)


def test_eas_protobuf_round_trip_and_plain_token():
    request = eas_pb.PredictRequest(signature_name="predict_images")
    eas_pb.fill_array(request.inputs["images"], np.ones((1, 4), dtype=np.float32))
    request.output_filter.append("scores")
    sig, inputs, wanted = eas.parse_proto(request.SerializeToString())
    assert sig == "predict_images" and inputs["images"].shape == (1, 4) and wanted == ["scores"]
    assert eas.authorized("tok", "tok", "POST", "/api/predict/x", {}, b"")
    assert not eas.authorized("tok", "other", "POST", "/api/predict/x", {}, b"")
    assert not eas.authorized("tok", "EAS forged", "POST", "/api/predict/x", {}, b"")
    assert eas.authorized(None, "", "POST", "/api/predict/x", {}, b"")
