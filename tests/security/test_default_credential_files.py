"""Member code never reads the cloud SDKs' default files of the server's HOME: a rank of a single-user server
(no sandbox: it runs as the server's OS user and sees its HOME) finds ``~/.aws/credentials`` and
``~/.aws/config`` there, yet boto3 and s3fs (aiobotocore) in it resolve no credentials, because the rule of
``pai_lab.security.sandbox`` points their variables at nothing. The same script run by the server's own
user with that HOME finds the key, so the file would be read without the rule."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import start_pai_server

KEY = "AKIAFROMTHESERVERSHOME"
PROBE = r"""
import asyncio
import os

import boto3
from aiobotocore.session import get_session

found = boto3.Session().get_credentials()
print("boto3:", found.access_key if found else None, flush=True)
found = asyncio.run(get_session().get_credentials())
print("s3fs:", found.access_key if found else None, flush=True)
print("profile:", boto3.Session().available_profiles, flush=True)
print("files:", os.environ.get("AWS_SHARED_CREDENTIALS_FILE"), os.environ.get("AWS_CONFIG_FILE"), flush=True)
"""


@pytest.fixture
def servers_home(tmp_path, monkeypatch):
    """The server's HOME holds an AWS credentials file and a config with a second profile; no AWS variable is
    set, so only the files could give a key."""
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    (home / ".aws" / "credentials").write_text(
        f"[default]\naws_access_key_id = {KEY}\naws_secret_access_key = secret-of-the-server\n"
    )
    (home / ".aws" / "config").write_text("[default]\nregion = us-east-1\n[profile ops]\nregion = us-west-2\n")
    monkeypatch.setenv("HOME", str(home))
    for name in list(os.environ):
        if name.startswith(("AWS_", "OSS_", "ALIBABA_CLOUD_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # the control's lookup: no instance role here
    return home


def test_a_rank_on_a_single_user_server_reads_no_credentials_from_the_servers_home(servers_home, tmp_path):
    root = tmp_path / "root"
    (root / "code").mkdir(parents=True)
    (root / "code" / "probe.py").write_text(PROBE)
    # the control: the server's user with this HOME gets the key from the file
    control = subprocess.run(
        [sys.executable, str(root / "code" / "probe.py")], capture_output=True, text=True, timeout=120, check=True
    )
    assert f"boto3: {KEY}" in control.stdout and f"s3fs: {KEY}" in control.stdout, control.stdout

    server = start_pai_server(root, "--job-sandbox", "off")
    try:
        job = server.client().workspace("default").jobs.submit(name="home", workers=1, command="python code/probe.py")
        job.wait(timeout=180, poll=0.3)
        logs = job.logs(None)
        assert job.state == "Succeeded", job.reason + logs
        assert KEY not in logs, logs
        assert "boto3: None" in logs and "s3fs: None" in logs, logs
        assert "'ops'" not in logs, logs  # the config file's profiles are not seen either
        assert f"files: {os.devnull} {os.devnull}" in logs, logs
    finally:
        server.stop()
