"""The managers are configurable classes: the names users set on PaiLabApp keep working and win over the
manager's own (c.TrainingManager.n_workers), and PaiLabApp.training_manager_class swaps the backend."""

from __future__ import annotations

import pytest
from traitlets import Int, default

from pai_lab.training.manager import TrainingManager


class OneWorkerManager(TrainingManager):
    """A backend variant an operator might ship: a LocalCluster of one single-threaded worker by default."""

    threads_per_worker = Int(1, config=True)

    @default("n_workers")
    def _one(self):
        return 1


def _with(config, **sections):
    out = {**config}
    for name, values in sections.items():
        out[name] = {**out.get(name, {}), **values}
    return out


@pytest.fixture
def jp_server_config(request, jp_server_config):
    return _with(jp_server_config, **request.param)


@pytest.mark.parametrize(
    "jp_server_config",
    [
        {
            "PaiLabApp": {"n_workers": 3, "serving_port": 18765, "serving_metrics_token": "metrics-secret"},
            "TrainingManager": {"n_workers": 5, "threads_per_worker": 1},
            "ServingManager": {"port": 18999},
        }
    ],
    indirect=True,
)
async def test_app_names_and_manager_traits_configure_the_managers(api, jp_serverapp):
    status, cluster = await api("GET", "/cluster")
    assert status == 200, cluster
    # PaiLabApp.n_workers wins over TrainingManager.n_workers; TrainingManager.threads_per_worker applies
    assert [w["cores"] for w in cluster["workers"]] == [1, 1, 1]
    serving = jp_serverapp.web_app.settings["pai_lab_platform"].managers["serving"]
    assert (serving.port, serving.metrics_token) == (18765, "metrics-secret")


@pytest.mark.parametrize(
    "jp_server_config",
    [
        {
            "PaiLabApp": {"training_manager_class": f"{__name__}.OneWorkerManager"},
        }
    ],
    indirect=True,
)
async def test_training_manager_class_swaps_the_backend(api):
    status, cluster = await api("GET", "/cluster")
    assert status == 200, cluster
    assert [w["cores"] for w in cluster["workers"]] == [1]
