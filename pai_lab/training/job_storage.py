"""How a job's ranks reach its S3 locations: with the workspace's storage options, never the server's own
credentials; and where a rank on another host keeps the job's model when no folder is shared.

When the job's ``checkpointDir`` (or one of its ``--buckets``) lies in the workspace's model store
(:mod:`pai_lab.resources.storage`), its ranks get that store's options as the standard ``AWS_*``
variables, which s3fs, boto3 and the AWS CLI read (``AWS_ENDPOINT_URL_S3`` for the endpoint). A rank of
the embedded cluster runs in the server's own environment: the server's cloud credentials are dropped
from it either way, and the SDKs' default files (``~/.aws/credentials``, ``~/.aws/config``) point at
nothing. The options travel with the launch to the workers and are never stored with the job.

On an external cluster the ranks' folders are on their own hosts, so a job whose ``checkpointDir`` is on
S3 keeps its model at ``<checkpointDir>/model/``: :func:`pai_lab.training.save_model` uploads the chief's
copy there (``PAI_LAB_MODEL_URI``), and the supervisor registers it from there.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from pai_lab.security.sandbox import without_cloud_credentials

log = logging.getLogger("pai_lab.training")

MODEL_URI_VARIABLE = "PAI_LAB_MODEL_URI"


def environment_for(options: dict) -> dict[str, str]:
    """s3fs storage options (a workspace's) as the ``AWS_*`` variables that give the same access."""
    from pai_lab.datasets.sources import s3_options

    opts = s3_options(options)
    client = opts.get("client_kwargs") or {}
    pairs = {
        "AWS_ACCESS_KEY_ID": opts.get("key"),
        "AWS_SECRET_ACCESS_KEY": opts.get("secret"),
        "AWS_SESSION_TOKEN": opts.get("token"),
        "AWS_ENDPOINT_URL_S3": client.get("endpoint_url"),
        "AWS_DEFAULT_REGION": client.get("region_name"),
    }
    return {k: str(v) for k, v in pairs.items() if v}


def model_uri(launch: dict, embedded: bool) -> str:
    """Where the job's model goes on S3 (empty: the job's output folder, on the control plane's machine)."""
    checkpoint = str(launch.get("checkpoint_dir") or "")
    if embedded or not checkpoint.startswith("s3://"):
        return ""
    return checkpoint.rstrip("/") + "/model"


def _workspace_options(store, workspace_id: str, uris: list[str]) -> dict | None:
    from pai_lab.resources.storage import options_for

    with store.transaction() as s:
        for uri in uris:
            options = options_for(s, workspace_id, uri) if uri else None
            if options is not None:
                return options
    return None


def for_ranks(store, workspace_id: str, launch: dict, embedded: bool) -> dict:
    """What the supervisor adds to the launch it hands to the cluster (not to the stored job)."""
    uris = [str(launch.get("checkpoint_dir") or ""), *launch.get("buckets", [])]
    options = _workspace_options(store, workspace_id, uris)
    return {
        "embedded_cluster": embedded,
        "storage_env": environment_for(options) if options is not None else {},
        "model_uri": model_uri(launch, embedded),
    }


def apply(env: dict, launch: dict) -> None:
    """A rank's S3 variables (in place): the workspace's, never the server's own (nor the SDKs' default
    files under its HOME, ``~/.aws/credentials`` and ``~/.aws/config``, pointed at nothing)."""
    if launch.get("embedded_cluster") or launch.get("storage_env"):
        kept = without_cloud_credentials(env)
        env.clear()
        env.update(kept)
    env.update(launch.get("storage_env") or {})
    if launch.get("model_uri"):
        env[MODEL_URI_VARIABLE] = launch["model_uri"]


def find_model(store, workspace_id: str, launch: dict, embedded: bool) -> str | None:
    """The job's SavedModel on S3 (``<checkpointDir>/model``) when its chief put one there, else None. Looked
    for only in the workspace's store, with its options: the server never reads a bucket with its own
    credentials."""
    uri = model_uri(launch, embedded)
    options = _workspace_options(store, workspace_id, [str(launch.get("checkpoint_dir"))]) if uri else None
    if options is None:
        return None
    import fsspec

    from pai_lab.datasets.sources import s3_options

    try:
        fs, path = fsspec.core.url_to_fs(uri, **s3_options(options))
        return uri if fs.exists(f"{path}/saved_model.pb") else None
    except Exception:  # each store raises its own kind; the job just has no model
        log.warning("cannot look for a model at %s", uri, exc_info=True)
        return None


def upload(folder: str, uri: str) -> None:
    """Copy a rank's model folder to ``uri`` (with the rank's ``AWS_*`` variables)."""
    import fsspec

    fs, path = fsspec.core.url_to_fs(uri)
    for file in sorted(Path(folder).rglob("*")):
        if file.is_file():
            fs.put_file(str(file), f"{path}/{file.relative_to(folder).as_posix()}")


def model_uri_here() -> str:
    """In a rank: where its job keeps the model on S3 (empty: the model folder is the job's)."""
    return os.environ.get(MODEL_URI_VARIABLE, "")
