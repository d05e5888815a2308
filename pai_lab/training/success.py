"""When a running job has succeeded (TFJob's default success policy).

A job with a ``chief`` rank succeeds as soon as its chief exits 0: in TF2's ParameterServerStrategy the
workers and parameter servers serve until they are ended, so the platform then ends the ranks still
running, as a stop does, and records them Succeeded (they are not failures). A job without a chief
succeeds once every rank other than a parameter server has exited 0; its parameter servers are then
ended. A rank that fails before that still fails the job (or rejoins, with enableDynamicCluster):
that check comes first and is the supervisor's.
"""

from __future__ import annotations


def _short(pod: str) -> str:
    return "-".join(pod.rsplit("-", 2)[-2:])


def chief_of(pod_roles: dict[str, str]) -> str | None:
    """The pod of the job's ``chief`` rank, None when the job has none."""
    return next((pod for pod, role in pod_roles.items() if role == "chief"), None)


def _exited_ok(pod: str, exits: dict[str, tuple]) -> bool:
    return pod in exits and exits[pod][0] == 0


def reached(pod_roles: dict[str, str], exits: dict[str, tuple]) -> tuple[bool, str]:
    """Whether the job has succeeded, and the reason its history gives for it ("" for the plain rule)."""
    chief = chief_of(pod_roles)
    if chief is None:
        trainers = [pod for pod, role in pod_roles.items() if role != "ps"]
        return all(_exited_ok(pod, exits) for pod in trainers), ""
    if not _exited_ok(chief, exits):
        return False, ""
    left = still_running(pod_roles, exits)
    ended = f"; the ranks still running were ended: {', '.join(_short(p) for p in left)}" if left else ""
    return True, f"{_short(chief)} exited with code 0: a job with a chief succeeds with its chief{ended}"


def still_running(pod_roles: dict[str, str], exits: dict[str, tuple]) -> list[str]:
    """The ranks that had not exited 0 when the job succeeded: the platform ends them, and they show
    Succeeded."""
    return [pod for pod in pod_roles if not _exited_ok(pod, exits)]
