"""The predict routes of the three protocols (EAS, TF Serving REST, Open Inference v2 infer), written
once over a small answering surface that two doors provide:

- :class:`Lean`, the hot path: a POST to a predict route is answered straight on tornado's HTTP/1.1
  connection (headers, body, one write), without a ``RequestHandler`` per request, its default
  headers, output transforms and flush machinery; :class:`Router` sends those requests there and
  every other one to the tornado application;
- the tornado handlers of :mod:`pai_lab.serving.gateway.handlers`, which add the GET routes.

The runtime raises :mod:`pai_lab.serving.gateway.errors`; :func:`status_of` is the one place that
turns them into status codes (450 for a full queue, as EAS answers, 408 past rpc.keepalive, 503
while no instance is ready ...)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import weakref
from urllib.parse import unquote

from tornado import httputil, routing, web
from tornado.escape import utf8

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
from pai_lab.serving.gateway.instance_runtime import Instance, Job
from pai_lab.serving.gateway.service_runtime import Route, ServiceRuntime
from pai_lab.serving.protocols import eas, tfserving, v2

log = logging.getLogger("pai_lab.gateway")
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


def _expire(svc: ServiceRuntime, job: Job, keepalive: int) -> None:
    """Past rpc.keepalive: the caller is answered 408 and the job gives up its place in a queue."""
    if job.future.done():
        return
    job.end(error=TimedOut(f"the request took longer than rpc.keepalive={keepalive} ms"))
    for holder in svc.instances:  # it may have been handed over to another instance
        holder.forget(job)


class Answering:
    """What answering a request needs, whichever door it came through: the gateway, the request,
    and set_status / set_header / get_status / finish of the door."""

    gateway: Gateway
    request: httputil.HTTPServerRequest
    t0: float
    metric_service: str
    metric_instance: str

    def set_status(self, status_code: int, reason: str | None = None) -> None:
        raise NotImplementedError

    def set_header(self, name: str, value) -> None:
        raise NotImplementedError

    def get_status(self) -> int:
        raise NotImplementedError

    def finish(self, chunk=None):
        raise NotImplementedError

    def record(self) -> None:
        """The request's metrics and service stats, once it is answered."""
        status, seconds = self.get_status(), time.perf_counter() - self.t0
        self.gateway.metrics.observe(self.metric_service, self.metric_instance, status, seconds)
        svc = self.gateway.services.get(self.metric_service) if self.metric_service else None
        if svc is not None:
            stats = svc.stats
            stats["requests"] += 1
            stats["latency_ms_sum"] += seconds * 1000
            if status >= 400:
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
            route.token, header, self.request.method or "", path, self.request.headers, self.request.body or b""
        )
        if why:
            raise Refused(f"{why}: send `Authorization: <service token>` (`pai eascmd desc <name>` shows AccessToken)")

    # the protocols define start (everything up to handing the job to an instance; the job, or
    # None once a refusal is answered) and reply (the answer from the job's result)
    fail_as_json = True
    _timer: asyncio.TimerHandle | None = None
    instance: Instance | None = None  # the instance the job was handed to

    def start(self, *args) -> Job | None:
        raise NotImplementedError

    def reply(self, result) -> None:
        raise NotImplementedError

    def begin(self, *args) -> Job | None:
        """The request up to its job waiting in an instance; None when it was refused (answered)."""
        try:
            return self.start(*args)
        except REFUSALS as exc:
            self.fail(exc, self.fail_as_json)
            return None

    def settle(self, future: asyncio.Future) -> None:
        """Answer from the job's future once it is done: the reply, or the refusal."""
        if self._timer is not None:
            self._timer.cancel()
        exc = NotReady("the request was abandoned; retry") if future.cancelled() else future.exception()
        if exc is None:
            self.reply(future.result())
        elif isinstance(exc, REFUSALS):
            self.fail(exc, self.fail_as_json)
        else:
            raise exc

    async def respond(self, *args) -> None:
        """The handler door: begin, wait, settle (the lean door settles in a callback instead)."""
        job = self.begin(*args)
        if job is None:
            return
        try:
            await job.future
        except REFUSALS:
            pass  # settle answers it
        self.settle(job.future)

    def submit_tensors(self, svc: ServiceRuntime, sig_name, inputs, output_filter) -> Job:
        self.metric_service = svc.name
        return self.submit(svc, svc.tensor_job(sig_name, inputs, output_filter))

    def submit(self, svc: ServiceRuntime, job: Job) -> Job:
        svc.stats["arrivals"] += 1  # the demand, refused or not: what the autoscaler sizes the service by
        inst = svc.pick()
        self.metric_instance = inst.name
        inst.enqueue(job)
        self.instance = inst
        # a timer on the job's own future rather than asyncio.wait_for, which wraps it in another
        # future and costs two more turns of the event loop on every answer
        keepalive = svc.spec["rpc"]["keepalive"]
        self._timer = asyncio.get_running_loop().call_later(keepalive / 1000, _expire, svc, job, keepalive)
        return job


class EasPredict(Answering):
    fail_as_json = False
    as_json = False
    job_kind = ""

    def start(self, entry: str) -> Job:
        route = self.gateway.route(entry)
        self.authorize(route, self.request.path)
        svc = self.gateway.service(route.choose())
        self.metric_service = svc.name
        job, self.as_json = svc.make_job(self.request.body, self.request.headers.get("Content-Type", ""))
        self.job_kind = job.kind
        return self.submit(svc, job)

    def reply(self, result) -> None:
        if self.job_kind == "process":
            body, status = result
            self.set_status(status)
            self.finish(body)
        elif self.as_json:
            self.set_header("Content-Type", "application/json")
            self.finish(eas.format_json(result))
        else:
            self.set_header("Content-Type", "application/octet-stream")
            self.finish(eas.format_proto(result))

    post = Answering.respond


def resolve_tf(gateway: Gateway, model: str, version: str | None, label: str | None) -> tuple[Route, ServiceRuntime]:
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


class TfPredict(Answering):
    style = ""

    def start(self, model, version=None, label=None, verb=None) -> Job:
        if verb != "predict":
            raise NotServed(f":{verb} is not served; use :predict")
        route, svc = resolve_tf(self.gateway, model, version, label)
        self.authorize(route, self.request.path)
        self.metric_service = svc.name
        names = [t["name"] for t in svc.signature(None)["inputs"]]
        sig_name, inputs, self.style = tfserving.parse(self.request.body, names)
        return self.submit_tensors(svc, sig_name, inputs, None)

    def reply(self, result) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(tfserving.format(result, self.style))

    post = Answering.respond


class V2Infer(Answering):
    def start(self, model, version=None, what=None) -> Job:
        if what != "/infer":
            raise NotServed("POST /v2/models/<name>/infer")
        route = self.gateway.route(model)
        self.authorize(route, self.request.path)
        svc = self.gateway.service(route.choose())
        self.metric_service = svc.name
        inputs, wanted, self.as_binary, self.request_id = v2.parse(
            self.request.body, self.request.headers.get("Inference-Header-Content-Length")
        )
        self.model, self.version = model, svc.spec["version"]
        return self.submit_tensors(svc, None, inputs, wanted)

    def reply(self, result) -> None:
        body, headers = v2.format(self.model, self.version, result, self.as_binary, self.request_id)
        for k, v in headers.items():
            self.set_header(k, v)
        self.finish(body)

    post = Answering.respond


# --------------------------------------------------------------------------- the lean door

MODEL = r"([^/:]+)"
# the POST routes answered on the lean path, with the handler arguments their groups give
LEAN_ROUTES: list[tuple[re.Pattern, type[Answering]]] = [
    (re.compile(r"/api/predict/([^/]+)/?"), EasPredict),
    (re.compile(rf"/v1/models/{MODEL}(?:/versions/(\d+))?(?:/labels/([^/:]+))?:(\w+)"), TfPredict),
    (re.compile(rf"/v2/models/{MODEL}(?:/versions/([^/]+))?(/ready|/infer)?/?"), V2Infer),
]
MAX_BODY = 512 << 20  # the largest request body the gateway reads
# a v2 binary body up to this size is read into a buffer made when its headers arrive; a larger one
# comes in tornado's pieces, so that announcing a body costs the gateway no memory before it is sent
DIRECT_BODY_MAX = 4 << 20
# what the bodies being read straight into their buffers may hold in all: a buffer is made when the
# headers arrive, so clients that announce bodies and stall must not make the gateway allocate without end
# (past it, bodies come in tornado's pieces, which hold only the bytes that arrived)
DIRECT_BODIES_BUDGET = 64 << 20
_direct_held = 0
SERVER_HEADER = "TornadoServer/" + __import__("tornado").version


_DATE = [0, ""]


def _http_date() -> str:
    """The Date header, formatted once a second rather than once a request."""
    now = int(time.time())
    if _DATE[0] != now:
        _DATE[:] = [now, httputil.format_timestamp(now)]
    return str(_DATE[1])


class Lean(Answering):
    """One request answered on its HTTP connection directly (the RequestHandler stand-in the
    predict routes need: status, headers, one finish)."""

    def __init__(self, gateway: Gateway, request: httputil.HTTPServerRequest):
        self.gateway = gateway
        self.request = request
        self.t0 = time.perf_counter()
        self.metric_service = ""
        self.metric_instance = ""
        self._status, self._reason = 200, "OK"
        self._headers = httputil.HTTPHeaders()
        self._headers["Server"] = SERVER_HEADER
        self._headers["Content-Type"] = "text/html; charset=UTF-8"  # tornado's default, as before
        self._headers["Date"] = _http_date()
        self._finished = False

    def set_status(self, status_code: int, reason: str | None = None) -> None:
        self._status = status_code
        self._reason = reason or httputil.responses.get(status_code, "Unknown")

    def set_header(self, name: str, value) -> None:
        self._headers[name] = str(value)

    def get_status(self) -> int:
        return self._status

    def finish(self, chunk=None):
        if self._finished:
            raise RuntimeError("finish() called twice")
        self._finished = True
        body = utf8(chunk) if chunk is not None else b""
        self._headers["Content-Length"] = str(len(body))
        connection = self.request.connection
        assert connection is not None
        start = httputil.ResponseStartLine("HTTP/1.1", self._status, self._reason)
        connection.write_headers(start, self._headers, body)
        connection.finish()
        self.record()

    def answer(self, args: tuple) -> None:
        """Parse, hand the job to an instance, and answer in the job future's callback: no task
        and no turn of the event loop between the request's last byte and the instance's frame."""
        try:
            job = self.begin(*args)
        except Exception:  # noqa: BLE001 - whatever it was, the caller gets a 500 and the log the trace
            self._crashed()
            return
        if job is not None:
            job.on_done = self._settled
            if job.future.done():  # already answered (an instance that failed it at once)
                self._settled(job.future)

    def _settled(self, future: asyncio.Future) -> None:
        """As the reply is read: while requests wait for the instance, their frame goes out first (its freed
        worker idles until it comes) and this answer on the loop's next turn; else the answer at once."""
        if self.instance is not None and self.instance.pending:
            asyncio.get_running_loop().call_soon(self._settle_now, future)
        else:
            self._settle_now(future)

    def _settle_now(self, future: asyncio.Future) -> None:
        try:
            self.settle(future)
        except Exception:  # noqa: BLE001 - whatever it was, the caller gets a 500 and the log the trace
            self._crashed()

    def _crashed(self) -> None:
        """An unforeseen failure is a 500 and a log line, as tornado answers it."""
        log.exception("uncaught failure answering %s %s", self.request.method, self.request.path)
        if not self._finished:
            self.set_status(500)
            self._headers["Content-Type"] = "text/plain; charset=utf-8"
            self.finish("500: Internal Server Error")


_LEAN_CLASSES = {proto: type(f"Lean{proto.__name__}", (proto, Lean), {}) for _, proto in LEAN_ROUTES}


class _LeanDelegate(httputil.HTTPMessageDelegate):
    def __init__(self, answer: Lean, args: tuple):
        self.answer, self.args = answer, args
        self.chunks: list[bytes] = []
        self.whole: bytearray | None = None  # a binary body read straight into one buffer
        self.length = ""

    def headers_received(self, start_line, headers: httputil.HTTPHeaders):
        """Open Inference v2 binary tensors: the body goes from the socket into one buffer of its size
        (not through tornado's read buffer in 64 KiB pieces, each copied out, then joined), and the
        arrays are views of that buffer all the way into the frame to the instance."""
        length = headers.get("Content-Length", "")
        if (
            "Inference-Header-Content-Length" not in headers
            or not length.isdigit()
            or not 0 < int(length) <= DIRECT_BODY_MAX
            or "Transfer-Encoding" in headers
            or "Expect" in headers  # the client waits for 100 Continue, which tornado sends after this
        ):
            return None
        global _direct_held
        connection = self.answer.request.connection
        stream = getattr(connection, "stream", None)
        if stream is None or _direct_held + int(length) > DIRECT_BODIES_BUDGET:
            return None
        _direct_held += int(length)
        self.whole, self.length = bytearray(int(length)), length
        del headers["Content-Length"]  # tornado reads no body of its own; put back once it is read
        return stream.read_into(self.whole)

    def data_received(self, chunk: bytes) -> None:
        self.chunks.append(chunk)

    def finish(self) -> None:
        request = self.answer.request
        if self.whole is not None:
            self._release()
            request.body, self.whole = self.whole, None  # type: ignore[assignment]  # bytes-like is enough
            request.headers["Content-Length"] = self.length
        else:
            chunks = self.chunks
            request.body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            self.chunks = []
        self.answer.answer(self.args)

    def on_connection_close(self) -> None:
        if self.whole is not None:
            self._release()
        self.chunks, self.whole = [], None

    def _release(self) -> None:
        global _direct_held
        _direct_held -= len(self.whole or b"")


class Router(routing.Router):
    """POSTs to the predict routes go the lean way; everything else to the tornado application."""

    def __init__(self, gateway: Gateway, app: web.Application):
        self.gateway = gateway
        self.app = app
        self.active: weakref.WeakSet = weakref.WeakSet()  # the connections that had a request lately

    def find_handler(self, request: httputil.HTTPServerRequest, **kwargs) -> httputil.HTTPMessageDelegate | None:
        self.active.add(request.connection.stream)  # type: ignore[union-attr]  # an HTTP1Connection
        if request.method == "POST":
            for pattern, proto in LEAN_ROUTES:
                match = pattern.fullmatch(request.path)
                if match:
                    args = tuple(None if g is None else unquote(g) for g in match.groups())
                    return _LeanDelegate(_LEAN_CLASSES[proto](self.gateway, request), args)
        return self.app.find_handler(request, **kwargs)
