"""What a notebook shows for ``dataset.lineage()`` / ``model.lineage()``: one small graph per version with
the inputs, a link to the run and the step, everything a member wrote escaped."""

from __future__ import annotations

from datetime import datetime

from pai_lab.client import PaiClient
from pai_lab.client.discovery import ServerInfo
from pai_lab.client.http import Http
from pai_lab.client.lineage import Lineage
from pai_lab.pipelines.lineage_schemas import LineageRecord


def _ws():
    return PaiClient(http=Http(ServerInfo("http://127.0.0.1:8888/lab-base/", "tok", "argument"))).workspace("team")


def _record(**changes) -> LineageRecord:
    values = dict(
        kind="model",
        name="points_model",
        version="2",
        run_id="run-1a2b",
        run_name="nightly",
        run_status="Succeeded",
        step="register-model",
        operator="pai/register_model@v1",
        inputs={
            "parameters": {"name": "points_model", "note": "<img src=x onerror=alert(1)>"},
            "artifacts": {"model": {"location": {"model": "trained", "version": "3"}}},
        },
        created_by="alice",
        created_at=datetime(2026, 1, 2, 3, 4, 5),
    )
    values.update(changes)
    return LineageRecord(**values)


def test_each_version_is_drawn_from_its_inputs_through_the_linked_run_and_step():
    lineage = Lineage(
        _ws(), "model", "points_model", [_record(), _record(version="1", run_id="run-0000", run_status=None)]
    )
    html = lineage._repr_html_()
    assert "href='http://127.0.0.1:8888/lab-base/pai-lab/api/v1/workspaces/team/pipelines/runs/run-1a2b'" in html
    assert "model trained:3" in html and "points_model:2" in html and "register-model" in html
    assert "(deleted)" in html  # the second version's run is gone; its lineage stays
    assert "&lt;img src=x onerror=alert(1)&gt;" in html and "<img" not in html
    assert lineage.runs == ["run-1a2b", "run-0000"] and len(lineage) == 2
    assert list(lineage.to_pandas()["version"]) == ["2", "1"]
    assert "2 <- run-1a2b/register-model" in repr(lineage)


def test_an_object_no_run_made_says_so():
    html = Lineage(_ws(), "dataset", "<b>raw</b>", [])._repr_html_()
    assert "not made by a pipeline run" in html and "&lt;b&gt;raw&lt;/b&gt;" in html
