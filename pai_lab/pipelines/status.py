"""PAI's run and node states, verbatim, and the rules that make a run's state from its nodes'."""

from __future__ import annotations


class PipelineRunStatus:
    Initialized = "Initialized"
    ReadyToSchedule = "ReadyToSchedule"
    Starting = "Starting"
    Running = "Running"
    WorkflowServiceStarting = "WorkflowServiceStarting"
    Suspended = "Suspended"
    Succeeded = "Succeeded"
    Terminated = "Terminated"
    Unknown = "Unknown"
    Skipped = "Skipped"
    Failed = "Failed"

    ALL = (
        "Initialized",
        "ReadyToSchedule",
        "Starting",
        "Running",
        "WorkflowServiceStarting",
        "Suspended",
        "Succeeded",
        "Terminated",
        "Unknown",
        "Skipped",
        "Failed",
    )
    RUNNING = ("Starting", "Running", "WorkflowServiceStarting", "ReadyToSchedule")
    FINISHED = ("Succeeded", "Failed", "Terminated", "Skipped", "Unknown")

    @classmethod
    def is_running(cls, status: str) -> bool:
        return status in cls.RUNNING


def run_status(nodes: dict[str, str]) -> str | None:
    """The run's final state once no node can move: Failed if any failed, Terminated if any was
    terminated, Succeeded when every node Succeeded or was Skipped as cached. None: still going."""
    values = list(nodes.values())
    if any(v in PipelineRunStatus.RUNNING or v == PipelineRunStatus.Initialized for v in values):
        return None
    if PipelineRunStatus.Failed in values:
        return PipelineRunStatus.Failed
    if PipelineRunStatus.Terminated in values:
        return PipelineRunStatus.Terminated
    return PipelineRunStatus.Succeeded


def announce_run(run_id: str, status: str) -> None:
    """A run's state changed and is committed: whoever long-polls it in this process reads it now."""
    from pai_lab.changes import RUN_CHANGES

    RUN_CHANGES.changed(run_id)
    if status in PipelineRunStatus.FINISHED:
        RUN_CHANGES.forget(run_id)
