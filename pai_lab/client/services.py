"""``ws.services``: deploy models and call them from a notebook.

svc = ws.services.deploy("mnist:2", name="mnist")      # a trained model, a job, a path or s3:// URI
svc.predict(x)                                          # numpy in, numpy out
svc.predict({"image_bytes": [png]})                     # bytes travel as {"b64": ...}
svc.class_names                                         # with class_names.json: label and score too
svc.panel()                                             # state, instances, QPS, traffic, test form
"""

from __future__ import annotations

import base64
import html
import json
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import requests

from pai_lab.errors import BadInput, PaiError, Unavailable
from pai_lab.serving.schemas import Instance, ServiceDetail, ServiceVersion
from pai_lab.serving.schemas import Service as ServiceInfo

if TYPE_CHECKING:  # pandas loads on first use: the CLI starts faster without it
    import pandas as pd

    from pai_lab.client import WorkspaceClient
    from pai_lab.client.autoscaler import ServiceAutoscaler

SERVICE_COLUMNS = ["name", "state", "instances_ready", "instances_total", "traffic", "endpoint", "created_at"]


class ServiceError(PaiError):
    """A service answered a prediction with an error status (450 queue full, 408 timeout...)."""

    def __init__(self, status: int, message: str):
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


class Service:
    """One service: its state, and ``predict``."""

    def __init__(self, services: Services, info: ServiceDetail):
        self._services = services
        self.info = info
        self._http = requests.Session()
        self._signature: dict | None = None

    @property
    def workspace(self) -> WorkspaceClient:
        """The workspace client this service was read through (``service.workspace.services.get(...)``)."""
        return self._services._ws

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def endpoint(self) -> str | None:
        return self.info.endpoint

    @property
    def token(self) -> str | None:
        return self.info.token

    @property
    def class_names(self) -> list[str] | None:
        """The model's class list (class_names.json beside its SavedModel); predictions then carry
        ``label`` and ``score``."""
        return self.info.class_names

    @property
    def state(self) -> str:
        return self.refresh().state

    def refresh(self) -> ServiceDetail:
        self.info = ServiceDetail.model_validate(self._services._ws._get(f"/services/{self.name}"))
        return self.info

    def wait(self, state: str = "Running", timeout: float = 180, *, progress: bool = True) -> Service:
        """Block until the service is in ``state`` (Running: every instance ready), showing the
        instances ready as a bar (``progress=False``: quiet). Instances that crash or fail to start
        are restarted by the gateway, so such a failure is waited through until ``timeout``; a
        failure restarting cannot heal (a model that cannot load) ends the wait at once."""
        deadline = time.time() + timeout
        bar = _ReadyBar(self.name) if progress else None
        try:
            while True:
                info = self.refresh()
                if bar is not None:
                    bar.show(info)
                if info.state == state and (state != "Running" or info.instances_ready == info.instances_total):
                    return self
                if info.fatal and state != "Failed":
                    raise Unavailable(f"service {self.name} failed: {info.message}")
                if time.time() > deadline:
                    cause = f" (last failure: {info.message})" if info.message else ""
                    raise Unavailable(
                        f"service {self.name} is {info.state}, not {state}, after {timeout:.0f} s"
                        f"{cause}; `pai eascmd w {self.name}` shows its instances"
                    )
                time.sleep(0.3)
        finally:
            if bar is not None:
                bar.close()

    # ----------------------------------------------------------------- calling it

    def _call(self, method: str, body: bytes | None = None, content_type: str = "application/json"):
        headers = {"Content-Type": content_type}
        if self.endpoint:
            if self.token:
                headers["Authorization"] = self.token
            try:
                resp = self._http.request(method, self.endpoint, data=body, headers=headers, timeout=600)
                return resp.status_code, resp.content
            except requests.ConnectionError:
                pass  # the gateway port is not reachable from here: go through the server
        http = self._services._ws.http
        url = http.url(self._services._ws._path(f"/services/{self.name}/predict"))
        resp = http.session.request(method, url, data=body, headers={"Content-Type": content_type}, timeout=600)
        return resp.status_code, resp.content

    def signature(self) -> dict:
        if self._signature is None:
            status, body = self._call("GET")
            if status != 200:
                raise ServiceError(status, body.decode(errors="replace"))
            self._signature = json.loads(body)
        return self._signature

    def predict(self, x: Any, *, signature_name: str | None = None, outputs: list[str] | None = None):
        """Call the service. For a SavedModel: an array (or {input: array}) in, the output array
        (or {output: array} when there are several) out. For a Python processor: bytes, str or a
        JSON-able object in, the parsed answer out; the same for the pmml and easyvision processors,
        which take the request body as it is."""
        from pai_lab.serving.processors.catalog import processor_kind

        config = self.info.config
        if config.get("processor_type") == "python" or processor_kind(config.get("processor") or "") in (
            "pmml",
            "easyvision",
        ):
            body = x if isinstance(x, bytes) else (x.encode() if isinstance(x, str) else json.dumps(x).encode())
            status, answer = self._call("POST", body, "application/octet-stream")
            if status != 200:
                raise ServiceError(status, answer.decode(errors="replace"))
            try:
                return json.loads(answer)
            except ValueError:
                return answer
        if not isinstance(x, dict):
            names = [i["name"] for i in self.signature()["inputs"]]
            if len(names) != 1:
                raise ValueError(f"the model has inputs {names}; pass a dict {{name: array}}")
            x = {names[0]: x}
        request = {"inputs": {k: _json_input(v) for k, v in x.items()}}
        if signature_name:
            request["signature_name"] = signature_name
        if outputs:
            request["output_filter"] = list(outputs)
        status, answer = self._call("POST", json.dumps(request).encode())
        if status != 200:
            raise ServiceError(status, answer.decode(errors="replace"))
        result = {k: np.asarray(v) for k, v in json.loads(answer)["outputs"].items()}
        return next(iter(result.values())) if len(result) == 1 else result

    # ----------------------------------------------------------------- managing it

    def modify(self, change: dict) -> Service:
        self.info = ServiceDetail.model_validate(self._services._ws._patch(f"/services/{self.name}", change))
        return self

    def scale(self, instances: int) -> Service:
        return self.modify({"metadata": {"instance": int(instances)}})

    def autoscale(
        self,
        min: int,  # EAS key names
        max: int,
        *,
        qps: float | None = None,
        cpu: float | None = None,
        scale_up_window: int | None = None,
        scale_down_window: int | None = None,
    ) -> ServiceAutoscaler:
        """``eascmd autoscale``: keep ``min`` to ``max`` instances, sized by ceil(current x metric /
        threshold) (10% tolerance) for ``qps`` (requests/s per instance) and/or ``cpu`` (percent of a
        core per instance); windows in seconds (defaults 0 up, 300 down)."""
        from pai_lab.client.autoscaler import ServiceAutoscaler, policy_body

        body = policy_body(min, max, qps, cpu, scale_up_window, scale_down_window)
        return ServiceAutoscaler.put(self, body)

    @property
    def autoscaler(self) -> ServiceAutoscaler | None:
        """The service's autoscaler (policy, current and target instances, scale events), or None."""
        from pai_lab.client.autoscaler import ServiceAutoscaler

        return ServiceAutoscaler.read(self)

    def release(self, weight: int) -> Service:
        self.info = ServiceDetail.model_validate(
            self._services._ws._post(f"/services/{self.name}/release", {"weight": int(weight)})
        )
        return self

    def version(self, version: int) -> Service:
        self.info = ServiceDetail.model_validate(
            self._services._ws._post(f"/services/{self.name}/version", {"version": int(version)})
        )
        return self

    def stop(self) -> Service:
        self.info = ServiceDetail.model_validate(self._services._ws._post(f"/services/{self.name}/stop"))
        return self

    def start(self) -> Service:
        self.info = ServiceDetail.model_validate(self._services._ws._post(f"/services/{self.name}/start"))
        return self

    def delete(self) -> None:
        self._services._ws._delete(f"/services/{self.name}")

    def instances(self) -> list[Instance]:
        return [Instance.model_validate(i) for i in self._services._ws._get(f"/services/{self.name}/instances")]

    def delete_instance(self, instance: str) -> None:
        self._services._ws._delete(f"/services/{self.name}/instances/{instance}")

    def versions(self) -> list[ServiceVersion]:
        return [ServiceVersion.model_validate(v) for v in self._services._ws._get(f"/services/{self.name}/versions")]

    def panel(self, refresh_seconds: float = 2.0):
        from pai_lab.widgets.service_panel import ServicePanel

        return ServicePanel(self, refresh_seconds=refresh_seconds)

    def __repr__(self) -> str:
        i = self.info
        return f"<service {i.name}: {i.state}, {i.instances_ready}/{i.instances_total} ready, {i.endpoint}>"

    def _repr_html_(self) -> str:
        """Name, state, endpoint, instances and versions; every value escaped."""
        i = self.info
        e = html.escape
        colour = {"Running": "#2e7d32", "Failed": "#c62828", "Stopped": "#757575"}.get(i.state, "#f9a825")
        try:
            instances, versions, autoscaler = self.instances(), self.versions(), self.autoscaler
        except PaiError:  # deleted meanwhile, or no longer readable: show what is known
            instances, versions, autoscaler = [], [], None
        rows = "".join(
            f"<tr><td>{e(x.name)}</td><td>{e(x.status)}</td><td>{e(x.ready)}</td>"
            f"<td>{x.restarts}</td><td>{e(x.reason)}</td></tr>"
            for x in instances
        )
        shown = "".join(
            f"<li>{v.version}{' (current)' if v.current else ''}: "
            f"<code>{e(str(v.config.get('model_path') or v.config.get('processor_path') or ''))}</code>"
            f"</li>"
            for v in versions
        )
        facts = [
            ("endpoint", f"<code>{e(i.endpoint or i.service_path)}</code>"),
            ("instances", f"{i.instances_ready}/{i.instances_total} ready"),
            ("version", f"{i.current_version} of {i.latest_version}"),
        ]
        if i.class_names:
            facts.append(("classes", e(", ".join(i.class_names[:20]) + (" ..." if len(i.class_names) > 20 else ""))))
        if autoscaler is not None:
            facts.append(("autoscaler", e(autoscaler.summary())))
        if i.traffic:
            facts.append(("traffic", e(", ".join(f"{k} {v}%" for k, v in i.traffic.items()))))
        if i.message:
            facts.append(("message", e(i.message)))
        table = "".join(
            f"<tr><th style='text-align:left'>{k}</th><td style='text-align:left'>{v}</td></tr>" for k, v in facts
        )
        return (
            f"<div><b>service {e(i.name)}</b> <span style='color:{colour}'>{e(i.state)}</span>"
            f"<table>{table}</table>"
            + (
                f"<table><tr><th>instance</th><th>status</th><th>ready</th><th>restarts</th><th>reason</th></tr>"
                f"{rows}</table>"
                if rows
                else ""
            )
            + (f"<div>versions</div><ul>{shown}</ul>" if shown else "")
            + "</div>"
        )


def _json_input(value):
    """An input as JSON: bytes as {"b64": ...} (TF Serving's convention), arrays as nested lists."""
    if isinstance(value, (bytes, bytearray)):
        return {"b64": base64.b64encode(value).decode()}
    if isinstance(value, np.ndarray) and value.dtype.kind in "SO":
        value = value.tolist()
    if isinstance(value, (list, tuple)) and any(isinstance(v, (bytes, bytearray, list, tuple)) for v in value):
        return [_json_input(v) for v in value]
    return np.asarray(value).tolist()


class _ReadyBar:
    """Instances ready of total, with the service's state, as a bar in notebooks and terminals."""

    def __init__(self, name: str):
        from tqdm.auto import tqdm

        self.bar = tqdm(
            total=1,
            desc=name,
            unit="instance",
            bar_format="{desc}: {n}/{total} instances ready |{bar}|{postfix} [{elapsed}]",
        )

    def show(self, info: ServiceDetail) -> None:
        self.bar.total = max(1, info.instances_total)
        self.bar.n = info.instances_ready
        # tqdm writes the postfix after ", "
        self.bar.set_postfix_str(info.state + (f" ({info.message[:80]})" if info.message else ""), refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


class Services:
    """The workspace's services: ``create``, ``deploy``, ``get``; a table in a notebook."""

    def __init__(self, ws):
        self._ws = ws

    def list(self) -> list[ServiceInfo]:
        return [ServiceInfo.model_validate(s) for s in self._ws._get("/services")]

    def create(
        self, spec: dict, *, relate: bool = False, wait: bool = True, timeout: float = 180, progress: bool = True
    ) -> Service:
        """``eascmd create`` from the service JSON (``relate=True``: ``create -r``)."""
        params = {"relate": "true"} if relate else None
        info = ServiceDetail.model_validate(self._ws._post("/services", spec, params=params))
        svc = Service(self, info)
        return svc.wait(timeout=timeout, progress=progress) if wait else svc

    def deploy(
        self,
        model: Any,
        name: str,
        *,
        instance: int = 1,
        processor: str = "tensorflow_cpu",
        batching: bool | None = None,
        wait: bool = True,
        timeout: float = 180,
        progress: bool = True,
        **metadata,
    ) -> Service:
        """Serve a SavedModel: a trained model (``name:version``, ``name``, a job id, a training job
        such as ``ws.jobs.get(id)`` or the model object), a local folder or an s3:// URI.
        ``job.model`` ("name:version") works as well. Waits until every instance is ready,
        showing their count (``progress=False``: quiet)."""
        model = _model_ref(model)
        meta: dict[str, Any] = {"instance": instance, **metadata}
        if batching is not None:
            meta.setdefault("rpc", {})["batching"] = batching
        return self.create(
            {"name": name, "model_path": model, "processor": processor, "metadata": meta},
            wait=wait,
            timeout=timeout,
            progress=progress,
        )

    def get(self, name: str) -> Service:
        return Service(self, ServiceDetail.model_validate(self._ws._get(f"/services/{name}")))

    __getitem__ = get

    def to_pandas(self) -> pd.DataFrame:
        from pai_lab.client import table

        return table(self.list(), SERVICE_COLUMNS)

    def __iter__(self):
        return iter(self.list())

    def __len__(self) -> int:
        return len(self.list())

    def _repr_html_(self) -> str:
        return self.to_pandas().to_html(index=False)


def _model_ref(model: Any) -> str:
    """What deploy() was given, as the service JSON's model_path."""
    if isinstance(model, str):
        return model
    if model is None:
        raise BadInput(
            "no model to deploy: a job's `model` is set once it has succeeded and registered its "
            "SavedModel (job.wait() first), or pass the job itself",
            "model",
        )
    model_id = str(getattr(model, "id", "") or "")
    if model_id.startswith("dlc-"):  # a training job: the server finds the model it registered
        return model_id
    if getattr(model, "name", None) and getattr(model, "version", None):  # a registered model
        return f"{model.name}:{model.version}"
    return str(getattr(model, "path", None) or model)
