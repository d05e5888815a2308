"""The S3 variables a rank gets: the workspace store's options in the names s3fs, boto3 and the AWS CLI read,
and never the server's own credentials."""

import os

from pai_lab.training import job_storage

OTHER_DEFAULTS = {"AWS_EC2_METADATA_DISABLED": "true", "ALIBABA_CLOUD_CREDENTIALS_FILE": os.devnull}


def test_storage_options_in_any_spelling_become_the_aws_variables():
    flat = {"key": "k", "secret": "s", "token": "t", "endpoint_url": "http://10.0.0.1:9000", "region": "eu-1"}
    nested = {
        "key": "k",
        "secret": "s",
        "client_kwargs": {"endpoint_url": "http://10.0.0.1:9000", "region_name": "eu-1"},
    }
    expected = {
        "AWS_ACCESS_KEY_ID": "k",
        "AWS_SECRET_ACCESS_KEY": "s",
        "AWS_ENDPOINT_URL_S3": "http://10.0.0.1:9000",
        "AWS_DEFAULT_REGION": "eu-1",
    }
    assert job_storage.environment_for(flat) == {**expected, "AWS_SESSION_TOKEN": "t"}
    assert job_storage.environment_for(nested) == expected
    assert job_storage.environment_for({"anon": True}) == {}


def test_a_rank_keeps_the_workers_credentials_only_off_the_server():
    server = {"AWS_ACCESS_KEY_ID": "server", "AWS_SECRET_ACCESS_KEY": "server", "PATH": "/usr/bin"}
    embedded = dict(server)
    job_storage.apply(embedded, {"embedded_cluster": True, "storage_env": {}, "model_uri": ""})
    # the SDKs' default files under the server's HOME (~/.aws/credentials, ~/.aws/config) point at nothing
    nothing = {"AWS_SHARED_CREDENTIALS_FILE": os.devnull, "AWS_CONFIG_FILE": os.devnull}
    assert embedded == {"PATH": "/usr/bin", **nothing, **OTHER_DEFAULTS}

    store = {"AWS_ACCESS_KEY_ID": "ws", "AWS_SECRET_ACCESS_KEY": "ws-secret"}
    remote = {**server, "AWS_SESSION_TOKEN": "the-worker's"}
    job_storage.apply(remote, {"embedded_cluster": False, "storage_env": store, "model_uri": "s3://b/ckpt/model"})
    assert remote == {
        **store,
        "PATH": "/usr/bin",
        "PAI_LAB_MODEL_URI": "s3://b/ckpt/model",
        **nothing,
        **OTHER_DEFAULTS,
    }

    chosen = {**store, "AWS_CONFIG_FILE": "/srv/store/config"}  # a store whose options name a file on purpose
    kept = dict(server)
    job_storage.apply(kept, {"embedded_cluster": True, "storage_env": chosen, "model_uri": ""})
    assert kept["AWS_CONFIG_FILE"] == "/srv/store/config" and kept["AWS_SHARED_CREDENTIALS_FILE"] == os.devnull

    own = dict(server)  # a worker machine's own credentials, for a bucket outside the workspace's store
    job_storage.apply(own, {"embedded_cluster": False, "storage_env": {}, "model_uri": ""})
    assert own == server


def test_the_model_goes_to_s3_only_from_an_external_cluster_with_an_s3_checkpoint_dir():
    launch = {"checkpoint_dir": "s3://b/store/ckpt/"}
    assert job_storage.model_uri(launch, embedded=False) == "s3://b/store/ckpt/model"
    assert job_storage.model_uri(launch, embedded=True) == ""
    assert job_storage.model_uri({"checkpoint_dir": "/srv/ckpt"}, embedded=False) == ""
