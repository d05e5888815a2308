"""The pytorch processor with real TorchScript modules, made here (seeded, torch.jit.script and
torch.jit.trace, saved with torch.jit.save) and served by a real `pai server`: created with
`pai eascmd create` and with ws.services.deploy, answered over EAS JSON, the EAS protobuf, Open
Inference v2 and the official eas-prediction client, each answer equal to the module's own."""

from __future__ import annotations

import json
import subprocess
import textwrap
import uuid

import numpy as np
import pytest
import requests

from tests.fixtures.serving import gateway_of

torch = pytest.importorskip("torch")

CLASSES = ["cat", "dog", "fish", "bird"]


class Classifier(torch.nn.Module):
    """x: float [N, 3] -> class probabilities [N, 4]."""

    def __init__(self):
        super().__init__()
        self.hidden = torch.nn.Linear(3, 8)
        self.head = torch.nn.Linear(8, len(CLASSES))

    def forward(self, x):
        return torch.softmax(self.head(torch.relu(self.hidden(x))), dim=-1)


class TwoInTwoOut(torch.nn.Module):
    """a, b: float [N, 2] -> (a @ W + b, the row sums of a * b), in float64."""

    def __init__(self):
        super().__init__()
        self.mix = torch.nn.Linear(2, 2)

    def forward(self, a, b):
        return self.mix(a) + b, (a * b).sum(-1)


class TokenMean(torch.nn.Module):
    """ids: int64 [N, T] token ids -> the mean of their embeddings [N, 4] (an embedding takes integers only)."""

    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(50, 4)

    def forward(self, ids):
        return self.embed(ids.reshape(ids.shape[0], -1)).mean(1)


class Bits(torch.nn.Module):
    """x: integers -> x XOR 5 (bitwise operators take integers only; nothing in forward says which)."""

    def forward(self, x):
        return torch.bitwise_xor(x, 5)


class Named(torch.nn.Module):
    """x: float [N, 2] -> {"doubled": 2x, "total": the row sums}."""

    def forward(self, x) -> dict[str, torch.Tensor]:
        return {"doubled": x * 2, "total": x.sum(-1)}


@pytest.fixture(scope="module")
def ws(live_server):
    return live_server.client().workspace("default")


def name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    """A scripted classifier saved as model.pt with class_names.json beside it; and the module."""
    torch.manual_seed(7)
    module = torch.jit.script(Classifier().eval())
    folder = tmp_path_factory.mktemp("torch_classifier")
    torch.jit.save(module, str(folder / "model.pt"))
    (folder / "class_names.json").write_text(json.dumps(CLASSES))
    return folder, module


def own(module, *xs: np.ndarray):
    with torch.no_grad():
        return module(*(torch.from_numpy(x) for x in xs))


def test_a_torchscript_classifier_answers_over_every_protocol_as_the_module_does(
    ws, classifier, cli, home, service_json, eas_prediction_python
):
    from pai_lab.serving.protocols import eas_pb

    folder, module = classifier
    svc_name = name("torch")
    spec = {"name": svc_name, "model_path": str(folder), "processor": "pytorch_cpu_1.10", "metadata": {"instance": 1}}
    rc, out, err = cli("eascmd", "create", service_json(spec))
    assert rc == 0, err
    assert "[OK] Service is running" in out
    svc = ws.services.get(svc_name)
    try:
        x = np.random.default_rng(3).normal(size=(5, 3)).astype(np.float32)
        expected = own(module, x).numpy()
        labels = [CLASSES[i] for i in expected.argmax(axis=1)]
        assert len(set(labels)) > 1  # the rows are not all one class: label is worth checking

        answer = svc.predict(x)
        assert np.allclose(answer["output"], expected, atol=1e-6)
        assert list(answer["label"]) == labels
        assert np.allclose(answer["score"], expected.max(axis=1), atol=1e-6)
        assert svc.predict(x.astype(np.float64).tolist(), outputs=["label"]).tolist() == labels
        whole = np.array([[1, 0, 2], [0, 3, 1]])  # pixels sent as whole numbers: floats to this module
        assert np.allclose(svc.predict(whole.tolist())["output"], own(module, whole.astype(np.float32)), atol=1e-6)
        signature = svc.signature()
        assert signature["inputs"] == [{"name": "input", "shape": None, "type": "DT_FLOAT", "keeps_integers": True}]
        assert [o["name"] for o in signature["outputs"]] == ["output", "label", "score"]

        request = eas_pb.PredictRequest()
        eas_pb.fill_array(request.inputs["input"], x)
        request.output_filter.append("output")
        body = requests.post(svc.endpoint, data=request.SerializeToString(), headers={"Authorization": svc.token})
        response = eas_pb.PredictResponse()
        response.ParseFromString(body.content)
        assert np.allclose(eas_pb.array_to_numpy(response.outputs["output"]), expected, atol=1e-6)

        infer = requests.post(
            gateway_of(svc.endpoint) + f"/v2/models/{svc.name}/infer",
            headers={"Authorization": svc.token},
            json={"inputs": [{"name": "input", "shape": [5, 3], "datatype": "FP32", "data": x.ravel().tolist()}]},
        ).json()
        by_name = {o["name"]: o for o in infer["outputs"]}
        assert np.allclose(np.reshape(by_name["output"]["data"], (5, 4)), expected, atol=1e-6)

        script = textwrap.dedent(f"""
            import json
            from eas_prediction import PredictClient, TFRequest
            client = PredictClient({gateway_of(svc.endpoint)!r}, {svc.name!r})
            client.set_token({svc.token!r})
            client.init()
            request = TFRequest("serving_default")
            request.add_feed("input", [5, 3], TFRequest.DT_FLOAT, {x.ravel().tolist()!r})
            request.add_fetch("output")
            print(json.dumps(list(client.predict(request).get_values("output"))))
        """)
        done = subprocess.run([eas_prediction_python, "-c", script], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        values = json.loads(done.stdout.strip().splitlines()[-1])
        assert np.allclose(np.reshape(values, (5, 4)), expected, atol=1e-6)

        headers = {"Authorization": svc.token}
        wrong_width = requests.post(svc.endpoint, json={"inputs": {"input": [[1.0, 2.0]]}}, headers=headers)
        assert wrong_width.status_code == 400, wrong_width.text
        assert (
            "'input'" in wrong_width.text
            and "[1, 2]" in wrong_width.text
            and "cannot be multiplied" in wrong_width.text
        )
        wrong_name = requests.post(svc.endpoint, json={"inputs": {"x": x.tolist()}}, headers=headers)
        assert wrong_name.status_code == 400 and "'x'" in wrong_name.text and "input" in wrong_name.text
        wrong_output = requests.post(
            svc.endpoint, json={"inputs": {"input": x.tolist()}, "output_filter": ["logits"]}, headers=headers
        )
        assert wrong_output.status_code == 400 and "'logits'" in wrong_output.text and "label" in wrong_output.text
        assert svc.predict(x).keys() == {"output", "label", "score"}  # the instance still answers
    finally:
        assert cli("eascmd", "delete", svc_name, "-y")[0] == 0


def test_a_traced_module_with_two_inputs_and_a_tuple_answer_in_float64(ws, tmp_path):
    torch.manual_seed(11)
    a = np.random.default_rng(5).normal(size=(3, 2))
    b = np.random.default_rng(6).normal(size=(3, 2))
    module = torch.jit.trace(TwoInTwoOut().double().eval(), (torch.from_numpy(a), torch.from_numpy(b)))
    torch.jit.save(module, str(tmp_path / "two.pth"))
    first, second = own(module, a, b)

    svc = ws.services.deploy(str(tmp_path), name("torch_two"), processor="pytorch", progress=False)
    try:
        assert svc.signature()["inputs"] == [
            {"name": "a", "shape": None, "type": "DT_DOUBLE", "keeps_integers": True},
            {"name": "b", "shape": None, "type": "DT_DOUBLE", "keeps_integers": True},
        ]
        answer = svc.predict({"a": a, "b": b})
        assert answer.keys() == {"output_0", "output_1"}
        assert np.allclose(answer["output_0"], first.numpy(), atol=1e-12)
        assert np.allclose(answer["output_1"], second.numpy(), atol=1e-12)
        assert np.allclose(svc.predict({"a": a, "b": b}, outputs=["output_1"]), second.numpy(), atol=1e-12)
        headers = {"Authorization": svc.token}
        missing = requests.post(svc.endpoint, json={"inputs": {"a": a.tolist()}}, headers=headers)
        assert missing.status_code == 400 and "'b'" in missing.text
    finally:
        svc.delete()


def test_a_module_answering_a_dict_answers_its_keys(ws, tmp_path):
    torch.jit.save(torch.jit.script(Named()), str(tmp_path / "named.torchscript"))
    x = np.arange(6, dtype=np.float32).reshape(3, 2)
    svc = ws.services.deploy(str(tmp_path), name("torch_dict"), processor="pytorch_cpu_2.1", progress=False)
    try:
        answer = svc.predict(x)
        assert answer.keys() == {"doubled", "total"}
        assert np.array_equal(answer["doubled"], x * 2) and np.array_equal(answer["total"], x.sum(-1))
        assert np.array_equal(svc.predict(x, outputs=["total"]), x.sum(-1))
        headers = {"Authorization": svc.token}
        unknown = requests.post(
            svc.endpoint, json={"inputs": {"input": x.tolist()}, "output_filter": ["output"]}, headers=headers
        )
        assert unknown.status_code == 400 and "'output'" in unknown.text and "doubled" in unknown.text
    finally:
        svc.delete()


def v2_binary(svc, tensors: dict[str, np.ndarray]) -> requests.Response:
    """An Open Inference v2 request with its tensors as raw bytes after the JSON header."""
    datatypes = {np.dtype(np.int64): "INT64", np.dtype(np.int32): "INT32", np.dtype(np.float32): "FP32"}
    raws = {k: np.ascontiguousarray(v).tobytes() for k, v in tensors.items()}
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": k,
                    "shape": list(v.shape),
                    "datatype": datatypes[v.dtype],
                    "parameters": {"binary_data_size": len(raws[k])},
                }
                for k, v in tensors.items()
            ]
        }
    ).encode()
    return requests.post(
        gateway_of(svc.endpoint) + f"/v2/models/{svc.name}/infer",
        data=head + b"".join(raws.values()),
        headers={
            "Authorization": svc.token,
            "Inference-Header-Content-Length": str(len(head)),
            "Content-Type": "application/octet-stream",
        },
    )


def test_token_ids_reach_an_embedding_as_integers_over_every_protocol(ws, tmp_path):
    from pai_lab.serving.protocols import eas_pb

    torch.manual_seed(5)
    ids = np.array([[1, 7, 49], [0, 3, 3]], dtype=np.int64)
    scripted, traced = tmp_path / "scripted", tmp_path / "traced"
    scripted.mkdir(), traced.mkdir()
    module = TokenMean().eval()
    torch.jit.save(torch.jit.script(module), str(scripted / "model.pt"))
    torch.jit.save(torch.jit.trace(module, torch.from_numpy(ids)), str(traced / "model.pt"))
    expected = own(module, ids).numpy()

    for folder in (scripted, traced):
        svc = ws.services.deploy(str(folder), name(f"torch_ids_{folder.name}"), processor="pytorch", progress=False)
        try:
            assert svc.signature()["inputs"] == [
                {"name": "input", "shape": None, "type": "DT_INT64", "keeps_integers": True}
            ]
            headers = {"Authorization": svc.token}
            answer = requests.post(svc.endpoint, json={"inputs": {"input": ids.tolist()}}, headers=headers)
            assert answer.status_code == 200, answer.text
            assert np.allclose(answer.json()["outputs"]["output"], expected, atol=1e-6)
            if folder is traced:
                continue
            assert np.allclose(svc.predict(ids), expected, atol=1e-6)
            for dtype in (np.int64, np.int32):
                answer = v2_binary(svc, {"input": ids.astype(dtype)})
                assert answer.status_code == 200, answer.text
                (out,) = answer.json()["outputs"]
                assert np.allclose(np.reshape(out["data"], (2, 4)), expected, atol=1e-6)
            request = eas_pb.PredictRequest()
            eas_pb.fill_array(request.inputs["input"], ids)
            body = requests.post(svc.endpoint, data=request.SerializeToString(), headers=headers)
            response = eas_pb.PredictResponse()
            response.ParseFromString(body.content)
            assert np.allclose(eas_pb.array_to_numpy(response.outputs["output"]), expected, atol=1e-6)
            fraction = requests.post(svc.endpoint, json={"inputs": {"input": [[1.5, 2, 3]]}}, headers=headers)
            assert fraction.status_code == 400 and "'input'" in fraction.text and "DT_INT64" in fraction.text
        finally:
            svc.delete()


def test_whole_numbers_keep_the_integer_type_they_were_sent_in(ws, tmp_path):
    torch.jit.save(torch.jit.script(Bits()), str(tmp_path / "bits.pt"))
    x = np.array([[0, 1, 2], [7, 8, 1 << 40]], dtype=np.int64)
    svc = ws.services.deploy(str(tmp_path), name("torch_bits"), processor="pytorch", progress=False)
    try:
        headers = {"Authorization": svc.token}
        answer = requests.post(svc.endpoint, json={"inputs": {"input": x.tolist()}}, headers=headers)
        assert answer.status_code == 200, answer.text
        assert answer.json()["outputs"]["output"] == (x ^ 5).tolist()  # XOR takes no floats: they arrived as integers
        small = x[:, :2].astype(np.int32)
        answer = v2_binary(svc, {"input": small})
        assert answer.status_code == 200, answer.text
        (out,) = answer.json()["outputs"]
        assert out["datatype"] == "INT32" and out["data"] == (small ^ 5).ravel().tolist()
        refused = requests.post(svc.endpoint, json={"inputs": {"input": [[0.5]]}}, headers=headers)
        assert refused.status_code == 400 and "'input'" in refused.text
    finally:
        svc.delete()
