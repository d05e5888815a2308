"""``ws.jobs``: submit distributed TensorFlow jobs, follow them, read their logs and metrics.

>>> job = ws.jobs.submit(name="mnist", command="python /root/code/train.py", workers=2,
...                      code_source="./code")
>>> job.monitor()          # live widget: ranks, log tail, metric curves, stop button
>>> job.wait().state
'Succeeded'
>>> job.metrics()          # DataFrame: pod, step, loss, accuracy, ...
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from pai_lab.client import table
from pai_lab.errors import BadInput, PaiError
from pai_lab.training.schemas import FOLLOW_WAIT_SECONDS, TERMINAL_STATES, JobDetail, LogLine, MetricPoint
from pai_lab.training.schemas import Job as JobInfo

if TYPE_CHECKING:  # pandas loads on first use: the CLI starts faster without it
    import pandas as pd

    from pai_lab.client import WorkspaceClient
    from pai_lab.client.job_compare import JobComparison


class JobFailed(PaiError):
    """Raised by ``Job.wait(raise_on_failure=True)`` when the job ends Failed or Stopped."""


def without_refused_progress(params: dict | None, error: PaiError) -> dict | None:
    """The long poll's ``params`` again without ``progress`` when the server refused that parameter (a
    400 naming it: a server from before the long poll took it), else None (the error stands)."""
    if params and "progress" in params and isinstance(error, BadInput) and error.field == "progress":
        return {k: v for k, v in params.items() if k != "progress"}
    return None


class Job:
    """A handle on one job. Attributes of its last-fetched :class:`JobDetail` are readable directly."""

    def __init__(self, jobs: Jobs, detail: JobDetail):
        self._jobs = jobs
        self.id = detail.id
        self.detail = detail

    @property
    def workspace(self) -> WorkspaceClient:
        """The workspace client this job was read through (``job.workspace.jobs.cluster()``...)."""
        return self._jobs._ws

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("_") or attr == "detail":
            raise AttributeError(attr)
        return getattr(self.detail, attr)

    def refresh(
        self, *, history_after: int | None = None, wait: float = 10.0, progress: str | None = None
    ) -> JobDetail:
        """The job now; with ``history_after``, once it has more state changes than that, or (with
        ``progress``) once its progress line differs from that (a long poll of at most ``wait`` seconds,
        so a follower hears of a change at once)."""
        params: dict | None = None
        if history_after is not None:
            params = {"history_after": history_after, "wait": wait}
            if progress is not None and not self._jobs._progress_refused:
                params["progress"] = progress
        timeout = self._jobs._ws.http.timeout + (wait if params else 0)
        try:
            found = self._jobs._ws._get(f"/jobs/{self.id}", params=params, timeout=timeout)
        except BadInput as exc:
            params = without_refused_progress(params, exc)
            if params is None:
                raise
            self._jobs._progress_refused = True  # a server from before it: never sent again in this session
            found = self._jobs._ws._get(f"/jobs/{self.id}", params=params, timeout=timeout)
        self.detail = JobDetail.model_validate(found)
        return self.detail

    @property
    def done(self) -> bool:
        return self.refresh().state in TERMINAL_STATES

    def wait(
        self, timeout: float | None = None, poll: float = 1.0, raise_on_failure: bool = False, progress: bool = False
    ) -> Job:
        """Block until the job ends (or ``timeout`` seconds pass); show a progress bar if asked.
        The end is seen as soon as it happens; ``poll`` is the longest gap between bar updates."""
        deadline = None if timeout is None else time.monotonic() + timeout
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=100, desc=self.id, unit="%")
        try:
            detail = self.refresh()
            while True:
                if bar is not None:
                    bar.set_postfix_str(f"{detail.state} {detail.progress}")
                    done = [p for p in detail.pods if p.state in TERMINAL_STATES]
                    bar.n = int(100 * len(done) / max(1, len(detail.pods)))
                    bar.refresh()
                if detail.state in TERMINAL_STATES:
                    break
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError(f"job {self.id} is still {detail.state} after {timeout} s")
                # a long poll answered at once when the job moves on (with a bar, when a rank starts or ends
                # too); without a bar nothing needs showing before then, so the job is not asked each `poll`
                step = poll if bar is not None else max(poll, FOLLOW_WAIT_SECONDS)
                detail = self.refresh(
                    history_after=len(detail.history),
                    wait=max(0.05, min(step, left if left is not None else step)),
                    progress=detail.progress if bar is not None else None,
                )
        finally:
            if bar is not None:
                bar.close()
        if raise_on_failure and self.detail.state != "Succeeded":
            raise JobFailed(f"job {self.id} ended {self.detail.state}: {self.detail.reason}")
        return self

    def stop(self) -> JobDetail:
        self.detail = JobDetail.model_validate(self._jobs._ws._post(f"/jobs/{self.id}/stop"))
        return self.detail

    def set_priority(self, priority: int) -> JobDetail:
        """Change a waiting job's priority (1-9, higher first; AlgorithmOps), as `pai dlc update --priority`."""
        self.detail = JobDetail.model_validate(
            self._jobs._ws._put(f"/jobs/{self.id}/priority", {"priority": int(priority)})
        )
        return self.detail

    def log_lines(
        self,
        pod: str | int | None = None,
        max_events_num: int = 2000,
        start_time=None,
        end_time=None,
        after: int | None = None,
        stream: str | None = None,
    ) -> list[LogLine]:
        """A pod's log lines (``stream``: "stdout" or "stderr" only; default both, in order)."""
        params: dict[str, Any] = {"max_events_num": max_events_num}
        if pod is not None:
            params["pod"] = self.pod_name(pod)
        if stream is not None:
            params["stream"] = stream
        for key, value in (("start_time", start_time), ("end_time", end_time), ("after", after)):
            if value is not None:
                params[key] = value.isoformat() if hasattr(value, "isoformat") else value
        return [LogLine.model_validate(x) for x in self._jobs._ws._get(f"/jobs/{self.id}/logs", params=params)]

    def logs(
        self,
        pod: str | int | None = 0,
        max_events_num: int = 2000,
        start_time=None,
        end_time=None,
        stream: str | None = None,
    ) -> str:
        """One pod's log as text (``pod``: a pod name, a worker index, or None for every pod; ``stream``:
        "stdout" or "stderr" alone, as PAI's StdOut and StdErr pages show them)."""
        lines = self.log_lines(pod, max_events_num, start_time, end_time, stream=stream)
        if pod is None:
            return "\n".join(f"[{x.pod.rsplit('-', 2)[-2]}-{x.pod.rsplit('-', 1)[-1]}] {x.line}" for x in lines)
        return "\n".join(x.line for x in lines)

    def pod_name(self, pod: str | int) -> str:
        if isinstance(pod, int):
            trainers = [p.name for p in self.detail.pods if p.role in ("chief", "master", "worker")]
            workers = [p.name for p in self.detail.pods if p.role == "worker"]
            return (workers or trainers)[pod]
        if not pod.startswith(self.id):
            return f"{self.id}-{pod}"
        return pod

    def metric_points(self, after: int | None = None) -> list[MetricPoint]:
        params = {"after": after} if after is not None else None
        return [MetricPoint.model_validate(x) for x in self._jobs._ws._get(f"/jobs/{self.id}/metrics", params=params)]

    def metrics(self) -> pd.DataFrame:
        """One row per (pod, step), one column per metric."""
        import pandas as pd

        points = self.metric_points()
        if not points:
            return pd.DataFrame(columns=["pod", "step", "time"])
        long = table(points)
        wide = long.pivot_table(index=["pod", "step"], columns="name", values="value", aggfunc="last")
        times = long.groupby(["pod", "step"])["time"].max()
        wide = wide.join(times).reset_index()
        wide.columns.name = None
        return wide.sort_values(["pod", "step"]).reset_index(drop=True)

    def monitor(self, refresh: float = 1.0):
        """A live panel: state per rank, log tail per pod, metric curves, stop button, Dask dashboard."""
        from pai_lab.widgets.job_monitor import JobMonitor

        return JobMonitor(self, refresh=refresh)

    def _repr_html_(self) -> str:
        from html import escape

        d = self.detail
        colour = {"Succeeded": "#2e7d32", "Failed": "#c62828", "Stopped": "#6d4c41"}.get(d.state, "#1565c0")
        ranks = "".join(
            f"<tr><td>{escape(p.name)}</td><td>{escape(p.state)}</td>"
            f"<td>{'' if p.exit_code is None else p.exit_code}</td></tr>"
            for p in d.pods
        )
        return (
            f"<div class='pai-lab-job'><b>{escape(d.id)}</b> {escape(d.name)}: "
            f"<b style='color:{colour}'>{escape(d.state)}</b> <code>{escape(d.progress)}</code>"
            + (f"<br>model <code>{escape(d.model)}</code>" if d.model else "")
            + (f"<br><i>{escape(d.reason)}</i>" if d.reason else "")
            + f"<table><tr><th style='text-align:left'>rank</th><th style='text-align:left'>state</th>"
            f"<th>exit</th></tr>{ranks}</table></div>"
        )

    def __repr__(self) -> str:
        return f"<Job {self.id} {self.detail.name!r} {self.detail.state}>"


class Jobs:
    """``ws.jobs``: ``submit(...)``, ``get(id)``, ``list()``; shown as a table in a notebook."""

    def __init__(self, ws):
        self._ws = ws
        self._progress_refused = False  # the server refused the long poll's `progress`: not sent again

    def submit(
        self,
        name: str,
        command: str,
        *,
        workers: int = 1,
        kind: str = "tfjob",
        job_file: str | None = None,
        **params: Any,
    ) -> Job:
        """Submit a job. Parameters are the `dlc submit tfjob` flags; a job file's values win.
        ``data_sources`` takes names (``"digits"``, ``"digits:2"``, ``"task:digits-labels"``) or the
        Dataset and Task objects themselves."""
        from pai_lab.training import spec as specs

        if params.get("data_sources") is not None:
            params["data_sources"] = _data_source_refs(params["data_sources"])
        values = {"name": name, "command": command, "workers": workers, **params}
        if job_file is not None:
            with open(job_file, encoding="utf-8") as f:
                values = specs.merge(values, specs.parse_job_file(f.read(), f"job file {job_file}"))
        spec = specs.build_spec(values, kind)
        # Local paths are the caller's: make them absolute before the server (maybe elsewhere) sees them.
        import os

        for key in ("code_source", "hyperParameters", "checkpointDir"):
            value = getattr(spec, key)
            if value and "://" not in value and not value.startswith("git@") and os.path.exists(value):
                setattr(spec, key, os.path.abspath(value))
        spec.tables, spec.outputs = _local_paths(spec.tables), _local_paths(spec.outputs)
        spec.model = _local_paths([spec.model])[0] if spec.model else ""
        detail = JobDetail.model_validate(self._ws._post("/jobs", spec.model_dump()))
        return Job(self, detail)

    def pai_tf(self, script: str, *, cluster: dict | str | None = None, **params: Any) -> Job:
        """Run the PAI-TF command: ``pai -name tensorflow1120_ext -Dscript=... -Dcluster=...`` with the
        -D parameters as keyword arguments (``entryFile``, ``checkpointDir``, ``gpuRequired``,
        ``enableDynamicCluster``, ``maxHungTimeBeforeGCInSeconds``, ``userDefinedParameters``...);
        ``cluster`` as a dict or its JSON."""
        import json
        import os

        from pai_lab.training.schemas import PaiTfCommand

        values = {k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items() if v is not None}
        if cluster is not None:
            values["cluster"] = cluster if isinstance(cluster, str) else json.dumps(cluster)
        values["script"] = script
        for key in ("script", "checkpointDir", "hyperParameters", "buckets"):  # the caller's paths, absolute
            value = values.get(key, "").removeprefix("file://")
            if value and "://" not in value and (os.path.exists(value) or key == "checkpointDir"):  # made by the job
                values[key] = os.path.abspath(value)
        command = PaiTfCommand.model_validate(values)
        detail = JobDetail.model_validate(self._ws._post("/jobs/pai-tf", command.model_dump()))
        return Job(self, detail)

    def get(self, job_id: str) -> Job:
        return Job(self, JobDetail.model_validate(self._ws._get(f"/jobs/{job_id}")))

    def list(self, state: str | None = None, name: str | None = None) -> list[JobInfo]:
        params = {k: v for k, v in {"state": state, "name": name}.items() if v}
        return [JobInfo.model_validate(j) for j in self._ws._get("/jobs", params=params or None)]

    def to_pandas(self) -> pd.DataFrame:
        return table(
            self.list(),
            ["id", "name", "state", "workers", "ps", "chief", "progress", "created_by", "created_at", "reason"],
        )

    def compare(self, jobs: list) -> JobComparison:
        """Jobs' metrics side by side (ids or Job objects): one chart per metric with every job's curve,
        and a table of final values, in a notebook."""
        from pai_lab.client.job_compare import JobComparison

        return JobComparison([j if isinstance(j, Job) else self.get(str(j)) for j in jobs])

    def cluster(self):
        from pai_lab.training.schemas import ClusterInfo

        return ClusterInfo.model_validate(self._ws.http.get("/cluster"))

    def images(
        self, framework: str | None = None, device: str | None = None, provider: str | None = None, order: str = "desc"
    ):
        """The environments this server's job ranks can run in (`pai dlc get images`): a job's
        ``worker_image=`` (and ps/chief/master) takes an ``image_url`` of these."""
        from pai_lab.training.schemas import EnvironmentImage

        query = {"framework": framework, "device": device, "provider": provider, "order": order}
        found = self._ws.http.get("/images", params={k: v for k, v in query.items() if v is not None})
        return [EnvironmentImage.model_validate(i) for i in found]

    def __iter__(self):
        return iter(self.list())

    def __len__(self) -> int:
        return len(self.list())

    def __getitem__(self, job_id: str) -> Job:
        return self.get(job_id)

    def _repr_html_(self) -> str:
        return self.to_pandas().to_html(index=False)


def _local_paths(refs: list[str]) -> list[str]:
    """Path-like tables and models made absolute (the caller's); names and URLs as they are."""
    import os

    return [os.path.abspath(r) if "/" in r and "://" not in r else r for r in refs]


def _data_source_refs(sources: Any) -> Any:
    """Dataset and Task objects as the names --data_sources takes; strings pass unchanged."""
    if isinstance(sources, str):
        return sources  # "a,b": split by the spec
    sources = list(sources) if hasattr(sources, "__iter__") else [sources]
    if all(isinstance(source, str) for source in sources):
        return sources  # names (the CLI's case): no need to load the dataset and labeling clients
    from pai_lab.client.datasets import Dataset
    from pai_lab.client.labeling import Task

    refs = []
    for source in sources:
        if isinstance(source, Task):
            refs.append(f"task:{source.name}")
        elif isinstance(source, Dataset):
            refs.append(source.name)
        else:
            refs.append(source)
    return refs
