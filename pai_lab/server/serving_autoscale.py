"""REST routes for a service's autoscaler (`eascmd autoscale`; EAS's `.../services/{name}/autoscaler`)."""

from __future__ import annotations

from pai_lab.server.routing import Router
from pai_lab.serving import autoscaling
from pai_lab.serving.autoscaler import autoscaler
from pai_lab.serving.manager import manager
from pai_lab.serving.schemas import Autoscaler, AutoscalerSpec

router = Router("serving")
PATH = "/workspaces/{workspace}/services/{name}/autoscaler"


def _show(req, workspace: str, name: str) -> Autoscaler:
    ready = int((manager(req.platform).status().get(name) or {}).get("ready") or 0)
    live = autoscaler(req.platform).live.get(name) or {}
    with req.transaction() as s:
        return autoscaling.get_policy(s, req.user, workspace, name, live, ready)


@router.put(
    PATH,
    name="service.autoscale",
    summary="Set a service's autoscaler (eascmd autoscale): min, max, qps/cpu thresholds, windows",
    body=AutoscalerSpec,
    response=Autoscaler,
)
def set_autoscaler(req, workspace, name, body: AutoscalerSpec):
    loop = autoscaler(req.platform)
    with req.transaction() as s:
        autoscaling.set_policy(s, req.user, workspace, name, body, limit=loop.limit(), started=loop.ensure_running)
    return _show(req, workspace, name)


@router.get(
    PATH,
    name="service.autoscaler",
    summary="A service's autoscaler: its policy, the instances it wants and its scale events",
    response=Autoscaler,
)
def get_autoscaler(req, workspace, name):
    return _show(req, workspace, name)


@router.delete(
    PATH,
    name="service.autoscale_delete",
    summary="Remove a service's autoscaler; the service keeps its instances",
    status=204,
)
def delete_autoscaler(req, workspace, name):
    with req.transaction() as s:
        autoscaling.delete_policy(s, req.user, workspace, name)
