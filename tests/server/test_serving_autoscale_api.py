"""A service's autoscaler through the REST API: EAS's body, refusals that name the field, who may
set it, and that it goes with its service. The services here run no instance (the live scaling
is in test_serving_autoscale.py)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.tf

BASE = "/workspaces/default/services"


def spec(name: str, model: str) -> dict:
    return {"name": name, "model_path": model, "processor": "tensorflow_cpu_2.7", "metadata": {"instance": 0}}


def policy(**overrides) -> dict:
    return {"min": 1, "max": 4, "scaleStrategies": [{"metricName": "qps", "threshold": 50}], **overrides}


async def test_bad_policies_are_refused_naming_the_field_and_nothing_is_stored(api, saved_model):
    assert (await api("POST", BASE, spec("auto_bad", str(saved_model))))[0] == 201
    cases = [
        (policy(min=0), "min", "at least 1"),
        (policy(min=3, max=3), "max", "more than min"),
        (policy(max=1000), "max", "max_service_instances"),
        (policy(scaleStrategies=[{"metricName": "gpu", "threshold": 5}]), "scaleStrategies.0.metricName", "qps, cpu"),
        (policy(scaleStrategies=[{"metricName": "qps", "threshold": 0}]), "scaleStrategies.0.threshold", "above 0"),
        (
            policy(scaleStrategies=[{"metricName": "cpu", "threshold": 80}, {"metricName": "cpu", "threshold": -1}]),
            "scaleStrategies.1.metricName",
            "twice",
        ),
        (policy(scaleStrategies=[]), "scaleStrategies", "at least one strategy"),
        (
            policy(behavior={"scaleDown": {"stabilizationWindowSeconds": -5}}),
            "behavior.scaleDown.stabilizationWindowSeconds",
            "0 to 3600",
        ),
        ({"min": 1, "max": 2}, "scaleStrategies", "required"),
        (policy(replicas=3), "replicas", "unknown field"),
    ]
    for body, field, words in cases:
        status, answer = await api("PUT", f"{BASE}/auto_bad/autoscaler", body)
        assert status == 400, (body, answer)
        assert answer["error"]["field"] == field and words in answer["error"]["message"], (body, answer)
    status, answer = await api("GET", f"{BASE}/auto_bad/autoscaler")
    assert status == 404 and answer["error"]["field"] == "autoscaler"
    assert "pai eascmd autoscale auto_bad" in answer["error"]["message"]
    status, answer = await api("PUT", f"{BASE}/nowhere/autoscaler", policy())
    assert status == 404 and answer["error"]["field"] == "name"


async def test_a_policy_is_set_shown_with_eas_defaults_replaced_and_removed(api, saved_model):
    assert (await api("POST", BASE, spec("auto_ok", str(saved_model))))[0] == 201
    status, shown = await api("PUT", f"{BASE}/auto_ok/autoscaler", policy())
    assert status == 200, shown
    assert (shown["min"], shown["max"], shown["scaleStrategies"]) == (1, 4, [{"metricName": "qps", "threshold": 50}])
    assert shown["behavior"]["scaleUp"] == {"stabilizationWindowSeconds": 0}
    assert shown["behavior"]["scaleDown"] == {"stabilizationWindowSeconds": 300}
    assert shown["service"] == "auto_ok" and shown["instances"] == 0 and shown["events"] == []
    body = policy(
        min=2,
        max=3,
        scaleStrategies=[{"metricName": "qps", "threshold": 20}, {"metricName": "cpu", "threshold": 80}],
        behavior={"scaleUp": {"stabilizationWindowSeconds": 5}, "scaleDown": {"stabilizationWindowSeconds": 30}},
    )
    status, shown = await api("PUT", f"{BASE}/auto_ok/autoscaler", body)
    assert status == 200 and (shown["min"], shown["max"]) == (2, 3)
    assert {s["metricName"]: s["threshold"] for s in shown["scaleStrategies"]} == {"qps": 20, "cpu": 80}
    assert shown["behavior"]["scaleDown"] == {"stabilizationWindowSeconds": 30}
    assert (await api("GET", f"{BASE}/auto_ok/autoscaler"))[1]["behavior"]["scaleUp"]["stabilizationWindowSeconds"] == 5
    assert (await api("DELETE", f"{BASE}/auto_ok/autoscaler"))[0] == 204
    assert (await api("GET", f"{BASE}/auto_ok/autoscaler"))[0] == 404
    assert (await api("DELETE", f"{BASE}/auto_ok/autoscaler"))[0] == 404
    # a deleted service takes its policy with it: a new one of the same name starts without
    assert (await api("PUT", f"{BASE}/auto_ok/autoscaler", policy()))[0] == 200
    assert (await api("DELETE", f"{BASE}/auto_ok"))[0] == 204
    assert (await api("POST", BASE, spec("auto_ok", str(saved_model))))[0] == 201
    assert (await api("GET", f"{BASE}/auto_ok/autoscaler"))[0] == 404


async def test_roles_as_for_scaling_a_service(api, members, saved_model):
    await members("default")
    assert (await api("POST", BASE, spec("prod_auto", str(saved_model))))[0] == 201
    assert (await api("POST", BASE, spec("test_auto", str(saved_model)), user="dev"))[0] == 201
    status, answer = await api("PUT", f"{BASE}/prod_auto/autoscaler", policy(), user="dev")
    assert status == 403, answer
    assert (await api("PUT", f"{BASE}/test_auto/autoscaler", policy(), user="dev"))[0] == 200
    assert (await api("PUT", f"{BASE}/prod_auto/autoscaler", policy(), user="ops"))[0] == 200
    assert (await api("PUT", f"{BASE}/prod_auto/autoscaler", policy(), user="guest"))[0] == 403
    assert (await api("DELETE", f"{BASE}/prod_auto/autoscaler", user="guest"))[0] == 403
    status, shown = await api("GET", f"{BASE}/prod_auto/autoscaler", user="guest")
    assert status == 200 and shown["created_by"] == "ops"
    assert (await api("GET", f"{BASE}/prod_auto/autoscaler", user="stranger"))[0] == 403
