"""The gateway's HTTP side: the handlers of the three protocols (EAS, TF Serving REST, Open
Inference v2), /metrics and the control plane's /_admin door, and the route table.

The runtime raises :mod:`pai_lab.serving.gateway.errors`; :func:`status_of` is the one place that
turns them into status codes (450 for a full queue, as EAS answers, 408 past rpc.keepalive, 503
while no instance is ready ...)."""

from __future__ import annotations

import asyncio
import hmac
import json
import os
import time

from tornado import web

from pai_lab.errors import BadInput
from pai_lab.serving.gateway.core import Gateway
from pai_lab.serving.gateway.errors import (
    InstanceError,
    NotAllowed,
    NotReady,
    NotServed,
    QueueFull,
    Refused,
    ServingError,
    TimedOut,
)
from pai_lab.serving.gateway.instance_runtime import Job
from pai_lab.serving.gateway.service_runtime import Route, ServiceRuntime
from pai_lab.serving.protocols import eas, tfserving, v2

QUEUE_FULL = 450  # EAS's own code: the caller retries later or elsewhere
REFUSALS = (ServingError, BadInput)
_STATUS = (
    (QueueFull, QUEUE_FULL),
    (TimedOut, 408),
    (NotReady, 503),
    (NotServed, 404),
    (NotAllowed, 405),
    (Refused, 401),
    (BadInput, 400),
)


def status_of(exc: Exception) -> int:
    if isinstance(exc, InstanceError):  # the instance chose it (a processor's own refusal, or 500)
        return exc.status
    return next((status for cls, status in _STATUS if isinstance(exc, cls)), 500)


class BaseHandler(web.RequestHandler):
    def initialize(self, gateway: Gateway):
        self.gateway = gateway
        self.t0 = time.perf_counter()
        self.metric_service = ""
        self.metric_instance = ""

    def check_xsrf_cookie(self):  # token-authenticated API, no cookies
        return None

    def compute_etag(self):
        return None

    def on_finish(self):
        self.gateway.metrics.observe(
            self.metric_service, self.metric_instance, self.get_status(), time.perf_counter() - self.t0
        )
        if self.metric_service in self.gateway.services:
            stats = self.gateway.services[self.metric_service].stats
            stats["requests"] += 1
            stats["latency_ms_sum"] += (time.perf_counter() - self.t0) * 1000
            if self.get_status() >= 400:
                stats["errors"] += 1

    def fail(self, exc: Exception, as_json: bool = True) -> None:
        """Answer a refusal of the runtime (or of this protocol) with its status code."""
        status, message = status_of(exc), getattr(exc, "message", str(exc))
        reason = {QUEUE_FULL: "Queue Full"}.get(status)
        self.set_status(status, reason=reason)
        if status in (QUEUE_FULL, 408):
            self.set_header("Connection", "close")  # as EAS does: the client retries elsewhere
        if as_json:
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps({"error": message}))
        else:
            self.set_header("Content-Type", "text/plain; charset=utf-8")
            self.finish(message)

    def authorize(self, route: Route, path: str) -> None:
        header = self.request.headers.get("Authorization", "")
        why = eas.refusal(
            route.token, header, self.request.method, path, self.request.headers, self.request.body or b""
        )
        if why:
            raise Refused(f"{why}: send `Authorization: <service token>` (`pai eascmd desc <name>` shows AccessToken)")

    async def run_tensors(self, svc: ServiceRuntime, sig_name, inputs, output_filter):
        self.metric_service = svc.name
        job = svc.tensor_job(sig_name, inputs, output_filter)
        return await self.call(svc, job)

    async def call(self, svc: ServiceRuntime, job: Job):
        svc.stats["arrivals"] += 1  # the demand, refused or not: what the autoscaler sizes the service by
        inst = svc.pick()
        self.metric_instance = inst.name
        inst.enqueue(job)
        try:
            return await asyncio.wait_for(job.future, svc.spec["rpc"]["keepalive"] / 1000)
        except asyncio.TimeoutError:  # the future is cancelled: its place in a queue is given up
            for holder in svc.instances:  # it may have been handed over to another instance
                holder.forget(job)
            raise TimedOut(f"the request took longer than rpc.keepalive={svc.spec['rpc']['keepalive']} ms") from None


class EasHandler(BaseHandler):
    async def get(self, entry: str):
        try:
            route = self.gateway.route(entry)
            self.authorize(route, self.request.path)
            svc = self.gateway.service(route.choose())
            self.metric_service = svc.name
            if svc.takes_body:
                raise NotAllowed(f"service {svc.name} runs the {svc.kind} processor; it has no signature to show")
            self.write(svc.signature(None))
        except REFUSALS as exc:
            self.fail(exc, as_json=False)

    async def post(self, entry: str):
        try:
            route = self.gateway.route(entry)
            self.authorize(route, self.request.path)
            svc = self.gateway.service(route.choose())
            self.metric_service = svc.name
            job, as_json = svc.make_job(self.request.body, self.request.headers.get("Content-Type", ""))
            result = await self.call(svc, job)
        except REFUSALS as exc:
            self.fail(exc, as_json=False)
            return
        if job.kind == "process":
            body, status = result
            self.set_status(status)
            self.finish(body)
        elif as_json:
            self.set_header("Content-Type", "application/json")
            self.finish(eas.format_json(result))
        else:
            self.set_header("Content-Type", "application/octet-stream")
            self.finish(eas.format_proto(result))


def _resolve_tf(gateway: Gateway, model: str, version: str | None, label: str | None) -> tuple[Route, ServiceRuntime]:
    route = gateway.route(model)
    if label:
        name = model if label in ("stable", "latest") else label
        if name not in dict(route.targets):
            raise NotServed(f"Servable not found for request: Specific({model}, label {label})")
        svc = gateway.service(name)
    else:
        svc = gateway.service(route.choose())
    if version is not None and str(svc.spec.get("version")) != version:
        raise NotServed(
            f"Servable not found for request: Specific({model}, {version}); "
            f"version {svc.spec.get('version')} is current"
        )
    return route, svc


class TfServingHandler(BaseHandler):
    async def get(self, model, version=None, label=None, what=None):
        try:
            route, svc = _resolve_tf(self.gateway, model, version, label)
            self.authorize(route, self.request.path)
            self.metric_service = svc.name
            if what == "/metadata":
                if svc.kind is None:
                    raise NotReady(f"service {svc.name} has no ready instance yet")
                self.write(tfserving.metadata(model, svc.spec["version"], svc.signatures))
            else:
                if not any(i.ready for i in svc.instances):
                    raise NotReady(f"service {svc.name} has no ready instance")
                self.write(tfserving.status(svc.spec["version"]))
        except REFUSALS as exc:
            self.fail(exc)

    async def post(self, model, version=None, label=None, verb=None):
        try:
            if verb != "predict":
                raise NotServed(f":{verb} is not served; use :predict")
            route, svc = _resolve_tf(self.gateway, model, version, label)
            self.authorize(route, self.request.path)
            self.metric_service = svc.name
            names = [t["name"] for t in svc.signature(None)["inputs"]]
            sig_name, inputs, style = tfserving.parse(self.request.body, names)
            outputs = await self.run_tensors(svc, sig_name, inputs, None)
        except REFUSALS as exc:
            self.fail(exc)
            return
        self.set_header("Content-Type", "application/json")
        self.finish(tfserving.format(outputs, style))


class V2Handler(BaseHandler):
    async def get(self, model, version=None, what=None):
        try:
            route = self.gateway.route(model)
            self.authorize(route, self.request.path)
            svc = self.gateway.service(route.choose())
            self.metric_service = svc.name
            if what == "/ready":
                ready = any(i.ready for i in svc.instances)
                self.set_status(200 if ready else 503)
                self.finish(json.dumps({"name": model, "ready": ready}))
                return
            self.write(v2.model_metadata(model, svc.spec["version"], svc.signature(None)))
        except REFUSALS as exc:
            self.fail(exc)

    async def post(self, model, version=None, what=None):
        try:
            if what != "/infer":
                raise NotServed("POST /v2/models/<name>/infer")
            route = self.gateway.route(model)
            self.authorize(route, self.request.path)
            svc = self.gateway.service(route.choose())
            self.metric_service = svc.name
            inputs, wanted, as_binary, request_id = v2.parse(
                self.request.body, self.request.headers.get("Inference-Header-Content-Length")
            )
            outputs = await self.run_tensors(svc, None, inputs, wanted)
        except REFUSALS as exc:
            self.fail(exc)
            return
        body, headers = v2.format(model, svc.spec["version"], outputs, as_binary, request_id)
        for k, v in headers.items():
            self.set_header(k, v)
        self.finish(body)


class V2ServerHandler(BaseHandler):
    def get(self, what=""):
        if what in ("/health/live", "/health/ready"):
            self.finish(json.dumps({"live": True} if what.endswith("live") else {"ready": True}))
        else:
            from pai_lab._version import __version__

            self.finish(json.dumps({"name": "pai_lab", "version": __version__, "extensions": ["binary_tensor_data"]}))


class MetricsHandler(web.RequestHandler):
    def initialize(self, gateway: Gateway):
        self.gateway = gateway

    def get(self):
        wanted = self.gateway.metrics_token
        if wanted:  # Prometheus sends `Authorization: Bearer <token>` (its authorization/bearer_token setting)
            given = self.request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            if not hmac.compare_digest(given.encode(), wanted.encode()):
                self.set_status(401)
                self.set_header("WWW-Authenticate", 'Bearer realm="pai_lab metrics"')
                self.finish("send `Authorization: Bearer <metrics token>` (PaiLabApp.serving_metrics_token)")
                return
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(generate_latest(self.gateway.metrics.registry))


class AdminHandler(web.RequestHandler):
    """The control plane's door: a shared secret, never exposed to service callers."""

    def initialize(self, gateway: Gateway):
        self.gateway = gateway

    def check_xsrf_cookie(self):
        return None

    def prepare(self):
        given = self.request.headers.get("X-Pai-Lab-Gateway-Secret", "")
        if not hmac.compare_digest(given.encode(), self.gateway.secret.encode()):
            raise web.HTTPError(403)

    def get(self, what, service=None, instance=None):
        if what == "status":
            self.write(
                {
                    "pid": os.getpid(),
                    "services": {n: s.status() for n, s in self.gateway.services.items()},
                    "routes": {e: dict(r.targets) for e, r in self.gateway.routes.items()},
                }
            )
        else:
            raise web.HTTPError(404)

    def put(self, what, service=None, instance=None):
        if what != "state":
            raise web.HTTPError(404)
        self.gateway.apply_state(json.loads(self.request.body))
        self.write({"ok": True})

    def delete(self, what, service=None, instance=None):
        if what != "instances":
            raise web.HTTPError(404)
        svc = self.gateway.services.get(service)
        if svc is None or not svc.delete_instance(instance):
            raise web.HTTPError(404)
        self.write({"ok": True})


def make_app(gateway: Gateway) -> web.Application:
    kw = {"gateway": gateway}
    model = r"([^/:]+)"
    return web.Application(
        [
            (r"/api/predict/([^/]+)/?", EasHandler, kw),
            (rf"/v1/models/{model}(?:/versions/(\d+))?(?:/labels/([^/:]+))?(/metadata)?/?", TfServingHandler, kw),
            (rf"/v1/models/{model}(?:/versions/(\d+))?(?:/labels/([^/:]+))?:(\w+)", TfServingHandler, kw),
            (r"/v2(/health/live|/health/ready)?/?", V2ServerHandler, kw),
            (rf"/v2/models/{model}(?:/versions/([^/]+))?(/ready|/infer)?/?", V2Handler, kw),
            (r"/metrics", MetricsHandler, kw),
            (r"/_admin/(status|state)", AdminHandler, kw),
            (r"/_admin/(instances)/([^/]+)/([^/]+)", AdminHandler, kw),
        ],
        compress_response=False,
    )
