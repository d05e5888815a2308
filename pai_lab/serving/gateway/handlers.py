"""The gateway's HTTP side: the handlers of the three protocols (EAS, TF Serving REST, Open
Inference v2), /metrics and the control plane's /_admin door, and the route table. Their predict
routes (and how refusals become status codes) are in :mod:`pai_lab.serving.gateway.predict`, which
also answers those POSTs without a handler per request."""

from __future__ import annotations

import hmac
import json
import os
import time

from tornado import web

from pai_lab.serving.gateway.core import Gateway
from pai_lab.serving.gateway.errors import NotAllowed, NotReady
from pai_lab.serving.gateway.predict import (
    REFUSALS,
    Answering,
    EasPredict,
    Router,
    TfPredict,
    V2Infer,
    resolve_tf,
)
from pai_lab.serving.protocols import tfserving, v2


class BaseHandler(web.RequestHandler, Answering):
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
        self.record()


class EasHandler(EasPredict, BaseHandler):
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


class TfServingHandler(TfPredict, BaseHandler):
    async def get(self, model, version=None, label=None, what=None):
        try:
            route, svc = resolve_tf(self.gateway, model, version, label)
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


class V2Handler(V2Infer, BaseHandler):
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


def make_app(gateway: Gateway) -> Router:
    """The gateway's HTTP routes: POSTs to the predict routes take the lean path of
    :mod:`pai_lab.serving.gateway.predict`, the rest these handlers."""
    kw = {"gateway": gateway}
    model = r"([^/:]+)"
    app = web.Application(
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
    return Router(gateway, app)
