"""``ws.pipelines``: run pipelines on the control plane and follow them (PAI's PipelineRun).

>>> run = ws.pipelines.run(pipeline, arguments={"fraction": 0.8}, name="heart")
>>> run.wait_for_completion()        # prints "<step>: <line>" as the steps log
>>> run.get_outputs()                # ArchivedArtifact references, to pass to another run
"""

from __future__ import annotations

import sys
import time
from html import escape
from typing import TYPE_CHECKING, Any

from pai_lab.errors import PaiError
from pai_lab.pipelines.lineage_schemas import OutputAction
from pai_lab.pipelines.schemas import (
    NodeLogLine,
    PipelineOutput,
    PipelineRunDetail,
    PipelineRunInfo,
    SavedOperatorDetail,
    SavedOperatorInfo,
)
from pai_lab.pipelines.status import PipelineRunStatus

if TYPE_CHECKING:
    from pai_lab.client import WorkspaceClient


class PipelineRunError(PaiError):
    """A run that ended Failed or Terminated while it was waited for (PAI's PAIException)."""


def workspace_client(workspace=None) -> WorkspaceClient:
    """The workspace a notebook's ``op.run()`` goes to: the one given, else "default" on the server found."""
    from pai_lab.client import WorkspaceClient, connect

    if isinstance(workspace, WorkspaceClient):
        return workspace
    return connect(workspace or "default")


class ArchivedArtifact:
    """An output of a run: a reference (location JSON) or a parameter's value; pass it as an argument."""

    def __init__(self, info: PipelineOutput, ws: WorkspaceClient | None = None):
        self._ws = ws
        self.name = info.name
        self.kind = info.kind
        self.producer_id = info.producer
        self.run_id = info.run_id
        self.value = info.value
        self.metadata = info.metadata
        self.id = f"{info.run_id}/{info.producer}/{info.name}"

    @property
    def is_model(self) -> bool:
        return "Model" in ((self.metadata or {}).get("type") or {}) or bool(self._location.get("model"))

    @property
    def _location(self) -> dict:
        return (self.value or {}).get("location") or {} if isinstance(self.value, dict) else {}

    def _action(self, action: str, body: dict) -> OutputAction:
        if self._ws is None or self.kind != "artifacts":
            raise PaiError(f"{self.name!r} is not an artifact of a run read from a server", "name")
        body = {**body, "step": self.producer_id}
        path = f"/pipelines/runs/{self.run_id}/outputs/{self.name}/{action}"
        return OutputAction.model_validate(self._ws._post(path, body))

    def register_model(self, name: str, description: str = "") -> OutputAction:
        """Register this output (a SavedModel folder, or a registered model) as model ``name``'s next version."""
        return self._action("register", {"kind": "model", "name": name, "description": description})

    def register_dataset(self, name: str, description: str = "") -> OutputAction:
        """Register this output (a file or folder) as dataset ``name``, or as its next version."""
        return self._action("register", {"kind": "dataset", "name": name, "description": description})

    def deploy(
        self, service: str, *, model_name: str | None = None, processor: str | None = None, instance: int = 1
    ) -> OutputAction:
        """Serve this model output as ``service`` with the processor its format calls for (a PMML file:
        pmml, a SavedModel folder: tensorflow_cpu), or ``processor``. A folder is registered first, as
        ``model_name`` or the service's name."""
        body = {"service": service, "model_name": model_name, "processor": processor, "instance": instance}
        return self._action("deploy", body)

    @property
    def uri(self) -> str | None:
        return (self.value or {}).get("location", {}).get("uri") if isinstance(self.value, dict) else None

    def __repr__(self) -> str:
        return f"ArchivedArtifact(name={self.name!r}, producer={self.producer_id!r}, value={self.value!r})"


def _argument(value: Any) -> Any:
    return value.value if isinstance(value, ArchivedArtifact) else value


class PipelineRun:
    """A handle on one run. Attributes of its last-read :class:`PipelineRunDetail` are readable directly."""

    def __init__(self, pipelines: Pipelines, detail: PipelineRunDetail):
        self._pipelines = pipelines
        self.run_id = self.id = detail.id
        self.detail = detail
        self._log_offsets: dict[str, int] = {}

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("_") or attr == "detail":
            raise AttributeError(attr)
        return getattr(self.detail, attr)

    @property
    def _ws(self) -> WorkspaceClient:
        return self._pipelines._ws

    def refresh(self, *, changed_from: str | None = None, wait: float = 10.0) -> PipelineRunDetail:
        """The run now; with ``changed_from``, once its status differs (a long poll of at most ``wait`` s)."""
        params = None if changed_from is None else {"status": changed_from, "wait": wait}
        timeout = self._ws.http.timeout + (wait if params else 0)
        self.detail = PipelineRunDetail.model_validate(
            self._ws._get(f"/pipelines/runs/{self.id}", params=params, timeout=timeout)
        )
        return self.detail

    def get_run_info(self) -> dict:
        return self.refresh().model_dump()

    def get_status(self) -> str:
        return self.refresh().status

    def get_outputs(
        self, name: str | None = None, node_id: str | None = None, depth: int = 1, type: str | None = None
    ) -> list[ArchivedArtifact]:
        """The run's outputs (the pipeline's declared ones, else every step's); ``node_id`` a step's name.
        ``depth`` is PAI's (how deep in nested pipelines to look): steps here are never nested, so any
        depth from 1 gives the same."""
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            from pai_lab.pipelines.types import PipelineError

            raise PipelineError(f"depth {depth!r}: a whole number from 1", "depth")
        found = [ArchivedArtifact(a, self._ws) for a in self.refresh().outputs]
        return [
            a
            for a in found
            if (name is None or a.name == name)
            and (node_id is None or a.producer_id == node_id)
            and (type is None or type in ((a.metadata or {}).get("type") or {}))
        ]

    def get_logs(self, node: str, page_offset: int = 0, page_size: int = 100, *, tail: int | None = None) -> list[str]:
        """A page of a step's log lines (PAI's list_node_logs), or with ``tail`` its last lines."""
        params = {"node": node, "page_offset": page_offset, "page_size": page_size}
        if tail:
            params["tail"] = tail
        lines = self._ws._get(f"/pipelines/runs/{self.id}/logs", params=params)
        return [NodeLogLine.model_validate(x).line for x in lines]

    def _print_new_logs(self, out) -> None:
        for node in self.detail.nodes:
            if node.status in (PipelineRunStatus.Initialized, PipelineRunStatus.Skipped):
                continue
            while True:
                start = self._log_offsets.get(node.name, 0)
                lines = self.get_logs(node.name, start, 1000)
                for line in lines:
                    print(f"{node.name}: {line}", file=out)
                self._log_offsets[node.name] = start + len(lines)
                if len(lines) < 1000:
                    break

    def wait_for_completion(self, show_outputs: bool = True, timeout: float | None = None) -> PipelineRun:
        """Block until the run ends; print its steps' logs as ``<step>: <line>`` when ``show_outputs``.
        Raises PipelineRunError when it ends Failed or Terminated (or is Suspended), TimeoutError on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        detail = self.detail  # as last answered (the run just posted): the long poll below reads it anew
        if detail.status not in PipelineRunStatus.RUNNING and detail.status != PipelineRunStatus.Initialized:
            detail = self.refresh()  # an ended or suspended state may be old news (a retry, a resume)
        while True:
            if show_outputs:
                self._print_new_logs(sys.stdout)
            if detail.status == PipelineRunStatus.Succeeded:
                return self
            if detail.status in (
                PipelineRunStatus.Failed,
                PipelineRunStatus.Terminated,
                PipelineRunStatus.Suspended,
                PipelineRunStatus.Unknown,
            ):
                raise PipelineRunError(
                    f"PipelineRun {detail.status.lower()}: run_id={self.id}"
                    + (f": {detail.reason}" if detail.reason else "")
                )
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"run {self.id} is still {detail.status} after {timeout} s")
            wait = 2.0 if show_outputs else 10.0
            if deadline is not None:
                wait = max(0.1, min(wait, deadline - time.monotonic()))
            detail = self.refresh(changed_from=detail.status, wait=wait)

    def terminate(self) -> PipelineRun:
        self.detail = PipelineRunDetail.model_validate(self._ws._post(f"/pipelines/runs/{self.id}/terminate"))
        return self

    def suspend(self) -> PipelineRun:
        self.detail = PipelineRunDetail.model_validate(self._ws._post(f"/pipelines/runs/{self.id}/suspend"))
        return self

    def resume(self) -> PipelineRun:
        self.detail = PipelineRunDetail.model_validate(self._ws._post(f"/pipelines/runs/{self.id}/resume"))
        return self

    def retry(self) -> PipelineRun:
        """Run the failed and later steps again; the steps that succeeded are kept."""
        self.detail = PipelineRunDetail.model_validate(self._ws._post(f"/pipelines/runs/{self.id}/retry"))
        return self

    def to_pandas(self):
        """The run's steps as a table."""
        from pai_lab.client import table

        return table(
            self.detail.nodes, ["name", "identifier", "status", "cached", "started_at", "finished_at", "reason"]
        )

    def dot(self) -> str:
        """The run's DAG as graphviz source, each step coloured by its state."""
        from pai_lab.pipelines.display import dot_of

        d = self.detail
        return dot_of([(n.name, n.identifier, n.depends) for n in d.nodes], {n.name: n.status for n in d.nodes})

    def monitor(self, refresh: float = 1.0):
        """A live panel: the DAG coloured by state, the step table, a log pane per step, the outputs and
        Terminate / Suspend / Resume / Retry; it polls every ``refresh`` s until the run ends or it is closed."""
        from pai_lab.widgets.pipeline_run import PipelineRunWidget

        return PipelineRunWidget(self, refresh=refresh)

    def _repr_mimebundle_(self, include=None, exclude=None):
        # display(run) in a kernel shows the live panel; the static HTML below stays in the bundle for
        # viewers without widgets (nbconvert, GitHub)
        view = "application/vnd.jupyter.widget-view+json"
        if (include is not None and view not in include) or (exclude is not None and view in exclude):
            return None
        try:
            from IPython import get_ipython

            in_kernel = getattr(get_ipython(), "kernel", None) is not None
        except ImportError:
            in_kernel = False
        return self.monitor()._repr_mimebundle_() if in_kernel else None

    def _repr_html_(self) -> str:
        from pai_lab.pipelines import display

        d = self.detail
        return (
            f"<div class='pai-lab-pipeline-run'><b>run {escape(d.name)}</b> ({escape(d.id)}): "
            f"<b>{escape(d.status)}</b>"
            + (f" &mdash; {escape(d.reason[:300])}" if d.reason else "")
            + display.nodes_graph_html(d.nodes)
            + display.steps_html(d.nodes)
            + display.outputs_html(d.outputs)
            + "</div>"
        )

    def __repr__(self) -> str:
        return f"<PipelineRun {self.id} {self.detail.name!r}: {self.detail.status}>"

    @classmethod
    def list(
        cls,
        name: str | None = None,
        run_id: str | None = None,
        pipeline_id: str | None = None,
        status: str | None = None,
        sort_by: str | None = None,
        order: str | None = None,
        workspace_id=None,
        *,
        workspace=None,
        limit: int = 200,
    ):
        """PAI's ``PipelineRun.list``: the workspace's runs that match, as PipelineRun handles, one at a
        time (a generator; each is read when it is reached). ``pipeline_id`` is a saved operator's id
        (``pl-...``) or a run's ``identifier@version``; ``sort_by`` ``created_at`` (PAI's
        ``GmtCreateTime``), ``started_at``, ``finished_at``, ``name`` or ``status``; ``order`` ``desc``
        (the default) or ``asc``. Bad values raise at once, naming the argument."""
        from pai_lab.pipelines.types import PipelineError

        key = SORT_KEYS.get((sort_by or "created_at").lower())
        if key is None:
            keys = ", ".join(sorted(set(SORT_KEYS.values())))
            raise PipelineError(f"sort_by {sort_by!r} is not a run's field to sort by; use one of {keys}", "sort_by")
        descending = (order or "desc").lower()
        if descending not in ("asc", "desc"):
            raise PipelineError(f"order {order!r}: asc or desc", "order")
        if status is not None and status not in PipelineRunStatus.ALL:
            raise PipelineError(
                f"status {status!r} is not a PAI state; one of {', '.join(PipelineRunStatus.ALL)}", "status"
            )
        pipelines = workspace_client(workspace or workspace_id).pipelines
        if run_id is not None:
            found: list[PipelineRunInfo] = [pipelines.get(run_id).detail]
        else:
            found = pipelines.list(status=status, name=name, limit=limit)
        if pipeline_id is not None:
            wanted = pipeline_id
            if "@" not in pipeline_id:  # a saved operator's id: its runs carry its identifier@version
                meta = pipelines.operator(pipeline_id).metadata
                wanted = f"{meta['identifier']}@{meta['version']}"
            found = [r for r in found if r.pipeline == wanted]
        found = [r for r in found if (name is None or r.name == name) and (status is None or r.status == status)]
        # runs without the field (not started, not finished) go last, whatever the order
        having = sorted((r for r in found if getattr(r, key) is not None), key=lambda r: getattr(r, key))
        found = (having[::-1] if descending == "desc" else having) + [r for r in found if getattr(r, key) is None]

        def handles():
            for info in found:
                yield PipelineRun(pipelines, info) if isinstance(info, PipelineRunDetail) else pipelines.get(info.id)

        return handles()


# PipelineRun.list's sort_by: PAI's spellings and the run's own field names
SORT_KEYS = {
    "created_at": "created_at",
    "gmtcreatetime": "created_at",
    "create_time": "created_at",
    "started_at": "started_at",
    "finished_at": "finished_at",
    "name": "name",
    "status": "status",
}


class Pipelines:
    """``ws.pipelines``: run, get and list pipeline runs."""

    def __init__(self, ws: WorkspaceClient):
        self._ws = ws

    def run(
        self,
        pipeline,
        arguments: dict | None = None,
        name: str | None = None,
        *,
        wait: bool = False,
        show_outputs: bool = True,
        cache: bool = True,
        timeout: float | None = None,
    ) -> PipelineRun:
        """Run a Pipeline or an operator (or a manifest dict). ``cache=False`` runs every step even when a
        step with the same operator and inputs succeeded before."""
        manifest = pipeline if isinstance(pipeline, dict) else pipeline.to_dict()
        body = {
            "manifest": manifest,
            "arguments": {k: _argument(v) for k, v in (arguments or {}).items()},
            "name": name,
            "cache": cache,
        }
        run = PipelineRun(self, PipelineRunDetail.model_validate(self._ws._post("/pipelines/runs", body)))
        if wait:
            run.wait_for_completion(show_outputs=show_outputs, timeout=timeout)
        return run

    def save(self, operator, identifier: str, version: str = "v1"):
        """Save an operator or pipeline in the workspace's registry; returns its SavedOperator."""
        from pai_lab.pipelines.operators import SavedOperator

        manifest = operator if isinstance(operator, dict) else operator.to_dict()
        saved = SavedOperatorDetail.model_validate(
            self._ws._post("/pipelines/operators", {"manifest": manifest, "identifier": identifier, "version": version})
        )
        return SavedOperator(saved.pipeline_id, saved.manifest)

    def operators(
        self, identifier: str | None = None, provider: str | None = None, version: str | None = None
    ) -> list[SavedOperatorInfo]:
        params = {k: v for k, v in {"identifier": identifier, "provider": provider, "version": version}.items() if v}
        return [SavedOperatorInfo.model_validate(o) for o in self._ws._get("/pipelines/operators", params=params)]

    def operator(self, pipeline_id: str):
        from pai_lab.pipelines.operators import SavedOperator

        saved = SavedOperatorDetail.model_validate(self._ws._get(f"/pipelines/operators/{pipeline_id}"))
        return SavedOperator(saved.pipeline_id, saved.manifest)

    def get(self, run_id: str) -> PipelineRun:
        return PipelineRun(self, PipelineRunDetail.model_validate(self._ws._get(f"/pipelines/runs/{run_id}")))

    def list(self, status: str | None = None, name: str | None = None, limit: int = 200) -> list[PipelineRunInfo]:
        params = {k: v for k, v in {"status": status, "name": name, "limit": limit}.items() if v is not None}
        return [PipelineRunInfo.model_validate(r) for r in self._ws._get("/pipelines/runs", params=params)]

    def to_pandas(self):
        from pai_lab.client import table

        return table(self.list(), ["id", "name", "pipeline", "status", "created_by", "created_at", "finished_at"])
