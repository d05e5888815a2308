"""Tensors between the gateway and an instance: a batch bigger than one socket write crosses in
each protocol and comes back whole (tensors travel as out-of-band buffers of the frames), and v2
binary sizes that do not fit the body are refused with the field to fix."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pytest
import requests

from tests.fixtures.serving import gateway_of

pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def tf_service(live_server, saved_model):
    ws = live_server.client().workspace("default")
    svc = ws.services.create(
        {
            "name": f"wire_{uuid.uuid4().hex[:8]}",
            "model_path": str(saved_model),
            "processor": "tensorflow_cpu_2.7",
            "metadata": {"instance": 1, "rpc": {"batching": True}},
        }
    )
    yield svc
    svc.delete()


def test_large_tensors_cross_whole_and_bad_binary_framing_is_refused(tf_service, in_process_model):
    """A batch bigger than one socket write crosses to the instance and back intact in each
    protocol (the tensors travel as out-of-band buffers); v2 sizes that do not fit the body are 400s."""
    x = np.random.default_rng(3).normal(size=(8192, 4)).astype(np.float32)  # 128 KiB in, 64 KiB out
    expected = in_process_model(x)
    name, token = tf_service.name, tf_service.token
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": "images",
                    "shape": list(x.shape),
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": x.nbytes},
                }
            ],
            "outputs": [{"name": "scores", "parameters": {"binary_data": True}}],
        }
    ).encode()
    url = gateway_of(tf_service.endpoint) + f"/v2/models/{name}/infer"
    headers = {"Authorization": token, "Inference-Header-Content-Length": str(len(head))}
    answer = requests.post(url, data=head + x.tobytes(), headers=headers)
    assert answer.status_code == 200, answer.text
    size = int(answer.headers["Inference-Header-Content-Length"])
    assert np.allclose(np.frombuffer(answer.content[size:], np.float32).reshape(-1, 2), expected, atol=1e-6)
    rows = requests.post(
        gateway_of(tf_service.endpoint) + f"/v1/models/{name}:predict",
        json={"instances": [{"images": r} for r in x.tolist()]},
        headers={"Authorization": token},
    )
    assert np.allclose(rows.json()["predictions"], expected, atol=1e-6)

    short = requests.post(url, data=head + x.tobytes()[:100], headers=headers)
    assert (
        short.status_code == 400 and "images" in short.json()["error"] and "binary_data_size" in short.json()["error"]
    )
    past = requests.post(url, data=head, headers=dict(headers, **{"Inference-Header-Content-Length": "99999"}))
    assert past.status_code == 400 and "Inference-Header-Content-Length" in past.json()["error"]


def test_binary_and_json_requests_take_turns_on_one_connection(tf_service, in_process_model):
    """A binary body is read straight into a buffer of its own (up to a size; a larger one in pieces):
    the keep-alive connection stays in step for the JSON request after it and the binary one after that
    (and the answers stay each its own)."""
    name, token = tf_service.name, tf_service.token
    url = gateway_of(tf_service.endpoint) + f"/v2/models/{name}/infer"
    rng = np.random.default_rng(5)
    with requests.Session() as session:
        for rows in (3000, 1, 350_000, 2):  # 350,000 rows: a body past the size read into one buffer
            x = rng.normal(size=(rows, 4)).astype(np.float32)
            if rows > 2:
                head = json.dumps(
                    {
                        "inputs": [
                            {"name": "images", "shape": [rows, 4], "datatype": "FP32"}
                            | {"parameters": {"binary_data_size": x.nbytes}}
                        ]
                    }
                ).encode()
                answer = session.post(
                    url,
                    data=head + x.tobytes(),
                    headers={"Authorization": token, "Inference-Header-Content-Length": str(len(head))},
                )
            else:
                tensor = {"name": "images", "shape": [rows, 4], "datatype": "FP32", "data": x.ravel().tolist()}
                answer = session.post(url, json={"inputs": [tensor]}, headers={"Authorization": token})
            assert answer.status_code == 200, answer.text
            [out] = answer.json()["outputs"]
            assert np.allclose(np.reshape(out["data"], out["shape"]), in_process_model(x), atol=1e-6)
