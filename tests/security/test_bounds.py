"""Bounds: a request that asks for too much is refused at once with a 4xx that names the field."""

import json
import time

import psutil
import pytest

W = "/workspaces/default"
JOB = {"name": "bounded", "command": "python -c 'print(1)'", "workers": 1}
TASK = {
    "name": "pets",
    "template": "image-classification",
    "labels": ["cat", "dog"],
    "lines": [{"data": {"source": "pics/a.jpg"}}],
}


@pytest.fixture
def jp_server_config(jp_server_config):
    config = json.loads(json.dumps(jp_server_config))
    config["PaiLabApp"].update({"max_job_ranks": 4, "max_service_instances": 4, "max_request_bytes": 256 << 10})
    return config


@pytest.mark.parametrize("field", ["workers", "ps", "masters"])
async def test_a_huge_rank_count_is_refused_at_once_without_growing_the_server(api, field):
    body = {**JOB, field: 99999999}
    if field == "masters":
        body["kind"] = "pytorchjob"
    before = psutil.Process().memory_info().rss
    started = time.monotonic()
    status, err = await api("POST", f"{W}/jobs", body)
    assert status == 400, err
    assert err["error"]["field"] == field and "max_job_ranks" in err["error"]["message"]
    assert time.monotonic() - started < 5
    assert psutil.Process().memory_info().rss - before < 50 << 20
    status, jobs = await api("GET", f"{W}/jobs")
    assert (status == 200 and jobs == []) or all(j["name"] != "bounded" for j in jobs)


async def test_ranks_together_above_the_configured_maximum_are_refused(api):
    # 3 workers and 2 PS: each below the server's 4, together above it
    status, err = await api("POST", f"{W}/jobs", {**JOB, "workers": 3, "ps": 2})
    assert status == 400 and err["error"]["field"] == "workers"
    assert "5 ranks" in err["error"]["message"] and "4" in err["error"]["message"]


@pytest.mark.parametrize(
    "path,body,field",
    [
        ("/jobs", {**JOB, "name": "j" * 5000}, "name"),
        ("/jobs", {**JOB, "command": "x" * 100_000}, "command"),
        ("/jobs", {**JOB, "thirdparty_libs": ["numpy"] * 5000}, "thirdparty_libs"),
        ("/labeling/tasks", {**TASK, "labels": [f"l{i}" for i in range(5000)]}, "labels"),
        ("/labeling/tasks", {**TASK, "labels": ["x" * 65]}, "labels.0"),
        ("/labeling/tasks", {**TASK, "description": "d" * 10_000}, "description"),
        ("/labeling/tasks", {**TASK, "labelers": ["u"] * 5000}, "labelers"),
    ],
)
async def test_strings_and_lists_past_their_bounds_are_400_naming_the_field(api, path, body, field):
    status, err = await api("POST", W + path, body)
    assert status == 400, err
    assert err["error"]["field"] == field, err


@pytest.mark.parametrize("labels", [[""], ["   "], ["cat", ""], [{"name": ""}]])
async def test_an_empty_label_name_is_400_not_500(api, labels):
    status, err = await api("POST", f"{W}/labeling/tasks", {**TASK, "labels": labels})
    assert status == 400, err
    assert err["error"]["field"].startswith("labels."), err
    status, tasks = await api("GET", f"{W}/labeling/tasks")
    assert status == 200 and tasks == []


async def test_a_body_over_the_configured_size_is_413_with_a_json_error(api):
    big = json.dumps({**TASK, "lines": [{"data": {"source": "x" * 1000}}] * 400}).encode()
    assert len(big) > 256 << 10
    status, err = await api("POST", f"{W}/labeling/tasks", raw_body=big)
    assert status == 413, err
    assert err["error"]["field"] == "body" and "max_request_bytes" in err["error"]["message"]
    status, tasks = await api("GET", f"{W}/labeling/tasks")
    assert status == 200 and tasks == []


async def test_a_job_within_the_bounds_is_still_accepted(api):
    status, job = await api("POST", f"{W}/jobs", {**JOB, "workers": 2, "ps": 2})
    assert status in (200, 201), job
    assert [p["role"] for p in job["pods"]].count("worker") == 2
    await api("POST", f"{W}/jobs/{job['id']}/stop")


async def test_a_service_above_the_configured_instances_is_refused_on_create_and_update(api, python_processor):
    spec = {
        "name": "bounded_svc",
        "processor_type": "python",
        "processor_path": str(python_processor),
        "processor_entry": "app.py",
        "metadata": {"instance": 5},
    }
    status, err = await api("POST", f"{W}/services", spec)
    assert status == 400, err
    assert err["error"]["field"] == "metadata.instance", err
    assert "4 instances" in err["error"]["message"] and "max_service_instances" in err["error"]["message"]
    status, services = await api("GET", f"{W}/services")
    assert status == 200 and services == []
    # within the bound it is created; scaling past it is refused and changes nothing
    status, created = await api("POST", f"{W}/services", {**spec, "metadata": {"instance": 0}})
    assert status == 201, created
    status, err = await api("PATCH", f"{W}/services/bounded_svc", {"metadata": {"instance": 1000}})
    assert status == 400 and err["error"]["field"] == "metadata.instance", err
    assert "max_service_instances" in err["error"]["message"]
    status, detail = await api("GET", f"{W}/services/bounded_svc")
    assert status == 200 and detail["config"]["metadata"]["instance"] == 0, detail
    await api("DELETE", f"{W}/services/bounded_svc")


BIG = str(2**70)  # past the store's 64-bit integers


@pytest.mark.parametrize(
    "method,path,body,params,field",
    [
        ("POST", "/labeling/tasks/t/answers", {"item": 2**70, "answer": "a"}, None, "item"),
        (
            "POST",
            "/labeling/tasks/t/prelabels",
            {"source": "m", "items": [{"item": 2**70, "answer": "a"}]},
            None,
            "items.0.item",
        ),
        (
            "POST",
            "/labeling/tasks",
            {**TASK, "name": "t2", "lines": None, "dataset": "d", "dataset_version": 2**70},
            None,
            "dataset_version",
        ),
        ("GET", "/labeling/tasks/t/items", None, {"offset": BIG}, "offset"),
        ("GET", f"/labeling/tasks/t/items/{BIG}/history", None, None, "item"),
        ("GET", f"/labeling/tasks/t/items/{BIG}/media", None, None, "item"),
        ("GET", f"/labeling/tasks/t/packages/{BIG}/items", None, None, "package"),
        ("GET", "/labeling/tasks/t/packages/²/items", None, None, "package"),
        ("GET", f"/datasets/d/versions/{BIG}", None, None, "version"),
        ("GET", "/datasets/d/items", None, {"offset": BIG}, "offset"),
        ("GET", "/datasets/d/diff", None, {"from": BIG}, "from"),
        ("GET", "/datasets/d/content", None, {"index": BIG}, "index"),
        ("POST", "/services/x/version", {"version": 2**70}, None, "version"),
    ],
)
async def test_numbers_past_64_bits_are_400_naming_the_field(api, pai_root, method, path, body, params, field):
    (pai_root / "pics").mkdir()
    (pai_root / "pics" / "a.txt").write_text("a")
    status, err = await api("POST", f"{W}/datasets", {"name": "d", "source": "pics", "scan": True})
    assert status == 201, err
    status, err = await api("POST", f"{W}/labeling/tasks", {**TASK, "name": "t", "template": "text-classification"})
    assert status == 201, err
    status, err = await api(method, W + path, body, params=params)
    assert status == 400, err
    assert err["error"]["field"] == field, err
    # the same references within range still work
    status, _ = await api("GET", f"{W}/datasets/d/versions/1")
    assert status == 200
    status, _ = await api("GET", f"{W}/models/x:{BIG}")
    assert status == 404
