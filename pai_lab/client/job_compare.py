"""``ws.jobs.compare([id1, id2])``: jobs' metrics side by side.

In a notebook it shows one chart per metric with every job's curve overlaid (the mean over the job's
ranks at each step) and a table of each job's final values; ``to_pandas()`` is that table and
``curves(metric)`` the points behind a chart.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

from pai_lab.errors import BadInput

if TYPE_CHECKING:
    import pandas as pd

    from pai_lab.client.jobs import Job

MAX_JOBS = 10  # one chart's legend stays readable
NOT_METRICS = ("pod", "step", "time")


class JobComparison:
    """Metrics of several jobs, read once when made (``refresh()`` reads them again)."""

    def __init__(self, jobs: list[Job]):
        if not 2 <= len(jobs) <= MAX_JOBS:
            raise BadInput(f"jobs: compare from 2 to {MAX_JOBS} jobs, got {len(jobs)}", "jobs")
        self.jobs = jobs
        names = [j.detail.name for j in jobs]
        # a job is named by its name, or by name and id when two share a name
        self.labels = {
            j.id: j.detail.name if names.count(j.detail.name) == 1 else f"{j.detail.name} {j.id}" for j in jobs
        }
        self.refresh()

    def refresh(self) -> JobComparison:
        self.frames: dict[str, pd.DataFrame] = {}
        for job in self.jobs:
            job.refresh()
            self.frames[job.id] = job.metrics()
        return self

    @property
    def metrics(self) -> list[str]:
        """Every metric any of the jobs reported, in name order."""
        return sorted({c for f in self.frames.values() for c in f.columns if c not in NOT_METRICS})

    def _per_step(self, job_id: str, metric: str):
        frame = self.frames[job_id]
        if metric not in frame.columns:
            return None
        return frame.dropna(subset=[metric]).groupby("step")[metric].mean()

    def curves(self, metric: str) -> dict[str, list[tuple[float, float]]]:
        """One series per job: (step, the mean of its ranks' values at that step)."""
        series = {}
        for job in self.jobs:
            values = self._per_step(job.id, metric)
            if values is not None and len(values):
                series[self.labels[job.id]] = [(float(s), float(v)) for s, v in values.items()]
        return series

    def to_pandas(self) -> pd.DataFrame:
        """One row per job: its state, last step and the final value of each metric (mean over its ranks)."""
        import pandas as pd

        rows = []
        for job in self.jobs:
            row = {"job": self.labels[job.id], "id": job.id, "state": job.detail.state}
            steps = self.frames[job.id]["step"]  # every frame has the column, empty or not
            row["last_step"] = int(max(steps)) if len(steps) else None
            for metric in self.metrics:
                values = self._per_step(job.id, metric)
                row[metric] = float(values.iloc[-1]) if values is not None and len(values) else None
            rows.append(row)
        return pd.DataFrame(rows, columns=["job", "id", "state", "last_step", *self.metrics])

    def _repr_html_(self) -> str:
        from pai_lab.widgets.job_monitor import curve_svg  # the one line chart of jobs' metrics

        charts = "".join(
            f"<div class='pai-lab-compare-chart'><b>{escape(m)}</b><br>"
            f"{curve_svg(self.curves(m), 460, 200, x_label='step', y_label=m)}</div>"
            for m in self.metrics
        )
        if not charts:
            charts = "<i>none of these jobs has reported a metric yet</i>"
        table = self.to_pandas().to_html(index=False, na_rep="", float_format=lambda v: f"{v:.4g}")
        title = ", ".join(escape(label) for label in self.labels.values())
        return (
            f"<div class='pai-lab-job-compare'><b>jobs compared:</b> {title}"
            f"<div style='display:flex;flex-wrap:wrap;gap:12px'>{charts}</div>{table}</div>"
        )

    def __repr__(self) -> str:
        return f"<JobComparison {', '.join(self.labels.values())}: {', '.join(self.metrics) or 'no metrics'}>"
