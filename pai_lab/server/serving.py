"""REST routes for services (`eascmd` verbs), and an authenticated proxy to the gateway for
callers that can reach only the Jupyter server's port."""

from __future__ import annotations

from typing import Any

from pydantic import RootModel

from pai_lab.errors import NotFound, Unavailable
from pai_lab.server.routing import Router
from pai_lab.serving import deploy
from pai_lab.serving import service as svc
from pai_lab.serving.manager import manager
from pai_lab.serving.schemas import (
    CreateQuery,
    Instance,
    ReleaseBody,
    Service,
    ServiceDetail,
    ServiceVersion,
    VersionBody,
)

router = Router("serving")
BASE = "/workspaces/{workspace}/services"


class JsonObject(RootModel[dict[str, Any]]):
    """A service JSON (all of it for create, the keys to change for modify)."""


def _cache(req):
    return manager(req.platform).state_dir / "models"


def _containment(req):
    from pai_lab.security.paths import Containment

    return Containment.from_platform(req.platform)


def _max_instances(req) -> int | None:
    return req.platform.settings.get("max_service_instances")


def _detail(req, workspace: str, name: str) -> ServiceDetail:
    mgr = manager(req.platform)
    with req.transaction() as s:
        return svc.get_service(s, req.user, workspace, name, mgr.status(), mgr.endpoint)


@router.get(BASE, name="service.list", summary="Services of the workspace (eascmd ls)", response=list[Service])
def list_services(req, workspace):
    mgr = manager(req.platform)
    with req.transaction() as s:
        return svc.list_services(s, req.user, workspace, mgr.status(), mgr.endpoint)


@router.post(
    BASE,
    name="service.create",
    summary="Create a service from its JSON (eascmd create [-r])",
    body=JsonObject,
    query=CreateQuery,
    response=ServiceDetail,
    status=201,
)
def create_service(req, workspace, body: JsonObject, query: CreateQuery):
    with req.transaction() as s:
        name = deploy.create_service(
            s,
            req.user,
            workspace,
            body.root,
            _cache(req),
            gateway=manager(req.platform),
            relate=query.relate,
            containment=_containment(req),
            max_instances=_max_instances(req),
        )
    return _detail(req, workspace, name)


@router.get(
    BASE + "/{name}",
    name="service.get",
    summary="One service with its token and configuration (eascmd desc)",
    response=ServiceDetail,
)
def get_service(req, workspace, name):
    return _detail(req, workspace, name)


@router.patch(
    BASE + "/{name}",
    name="service.modify",
    summary="Change a service (eascmd modify): "
    '{"metadata": {"instance": N}} scales; model/processor keys add a version',
    body=JsonObject,
    response=ServiceDetail,
)
def modify_service(req, workspace, name, body: JsonObject):
    with req.transaction() as s:
        deploy.modify_service(
            s,
            req.user,
            workspace,
            name,
            body.root,
            _cache(req),
            gateway=manager(req.platform),
            containment=_containment(req),
            max_instances=_max_instances(req),
        )
    return _detail(req, workspace, name)


@router.delete(BASE + "/{name}", name="service.delete", summary="Delete a service (eascmd delete)", status=204)
def delete_service(req, workspace, name):
    with req.transaction() as s:
        svc.delete_service(s, req.user, workspace, name, gateway=manager(req.platform))


def _state(req, workspace, name, state):
    with req.transaction() as s:
        svc.set_state(s, req.user, workspace, name, state, gateway=manager(req.platform))
    return _detail(req, workspace, name)


@router.post(BASE + "/{name}/start", name="service.start", summary="Start a stopped service", response=ServiceDetail)
def start_service(req, workspace, name):
    return _state(req, workspace, name, "Running")


@router.post(
    BASE + "/{name}/stop",
    name="service.stop",
    summary="Stop a service; its configuration is kept",
    response=ServiceDetail,
)
def stop_service(req, workspace, name):
    return _state(req, workspace, name, "Stopped")


@router.post(
    BASE + "/{name}/release",
    name="service.release",
    summary="Blue-green: give this service a share of the original endpoint's traffic (eascmd release -w)",
    body=ReleaseBody,
    response=ServiceDetail,
)
def release_service(req, workspace, name, body: ReleaseBody):
    with req.transaction() as s:
        svc.release(s, req.user, workspace, name, body.weight, gateway=manager(req.platform))
    return _detail(req, workspace, name)


@router.post(
    BASE + "/{name}/version",
    name="service.version",
    summary="Switch to a stored version (eascmd version)",
    body=VersionBody,
    response=ServiceDetail,
)
def switch_version(req, workspace, name, body: VersionBody):
    with req.transaction() as s:
        svc.switch_version(s, req.user, workspace, name, body.version, gateway=manager(req.platform))
    return _detail(req, workspace, name)


@router.get(
    BASE + "/{name}/versions",
    name="service.versions",
    summary="Stored versions of a service",
    response=list[ServiceVersion],
)
def list_versions(req, workspace, name):
    with req.transaction() as s:
        return svc.list_versions(s, req.user, workspace, name)


@router.get(
    BASE + "/{name}/instances", name="service.instances", summary="Instances (eascmd w)", response=list[Instance]
)
def list_instances(req, workspace, name):
    mgr = manager(req.platform)
    with req.transaction() as s:
        return svc.list_instances(s, req.user, workspace, name, mgr.status())


@router.delete(
    BASE + "/{name}/instances/{instance}",
    name="service.instance_delete",
    summary="Delete an instance; a new one replaces it (eascmd dw)",
    status=204,
)
def delete_instance(req, workspace, name, instance):
    with req.transaction() as s:
        svc.check_instance_delete(s, req.user, workspace, name)
    if not manager(req.platform).delete_instance(name, instance):
        raise NotFound(f"service {name!r} has no instance {instance!r}; `pai eascmd w {name}` lists them", "instance")


async def _proxy(req, workspace, name):
    """Forward a prediction to the gateway with the service's own token: the caller is already
    authenticated by the Jupyter server and may read the workspace's services."""
    import asyncio

    from tornado.httpclient import AsyncHTTPClient, HTTPClientError

    loop = asyncio.get_running_loop()
    mgr = manager(req.platform)

    def lookup():
        with req.transaction() as s:
            return svc.service_token(s, req.user, workspace, name)

    entry, token = await loop.run_in_executor(None, lookup)
    if not mgr.running:
        raise Unavailable(f"service {name!r} is not running: the serving gateway is not started", "name")
    handler = req.handler
    headers = {"Content-Type": handler.request.headers.get("Content-Type", "application/json")}
    if token:
        headers["Authorization"] = token
    method = handler.request.method
    try:
        resp = await AsyncHTTPClient().fetch(
            mgr.endpoint(f"/api/predict/{entry}"),
            method=method,
            headers=headers,
            body=handler.request.body if method == "POST" else None,
            request_timeout=600,
        )
    except HTTPClientError as exc:
        resp = exc.response
        if resp is None:
            raise Unavailable(f"the serving gateway did not answer: {exc}") from None
    handler.set_status(resp.code, reason=resp.reason)
    handler.set_header("Content-Type", resp.headers.get("Content-Type", "application/octet-stream"))
    handler.finish(resp.body or b"")


@router.post(
    BASE + "/{name}/predict",
    name="service.predict",
    summary="Call a service through this server (same body and answer as /api/predict/<name> on the gateway)",
    raw=True,
    log=False,
)
async def predict(req, workspace, name):
    await _proxy(req, workspace, name)


@router.get(
    BASE + "/{name}/predict",
    name="service.signature",
    summary="The service's model signature, through this server",
    raw=True,
)
async def signature(req, workspace, name):
    await _proxy(req, workspace, name)
