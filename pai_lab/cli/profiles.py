"""The local profiles PAI's command lines keep (~/.eas/config for eascmd, ~/.dlc/config for dlc).

A seed script starts with `eascmd config -i ID -k SECRET -e ENDPOINT` or `dlc config ...`: the
AccessKey pair is kept (the script runs unchanged) but nothing here needs it. The profile's
workspace is the default of every verb, and an endpoint that is a URL names the pai_lab server.
"""

from __future__ import annotations

import configparser
import os
from pathlib import Path

from pai_lab.cli.base import UsageError

SECTION = "default"


def read(path: Path) -> dict:
    """The profile's keys; {} when none was written."""
    parser = configparser.ConfigParser()
    try:
        parser.read(path, encoding="utf-8")
    except configparser.Error as exc:
        raise UsageError(f"profile {path} is not a valid config file: {exc.message}") from None
    return dict(parser[SECTION]) if parser.has_section(SECTION) else {}


def write(path: Path, values: dict[str, str]) -> None:
    """Write the profile, readable by its owner only from the first byte (the AccessKey secret is in it)."""
    parser = configparser.ConfigParser()
    parser[SECTION] = values
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.chmod(path, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            parser.write(fh)
    except OSError as exc:
        raise UsageError(f"cannot write profile {path}: {exc.strerror}") from None


def use_endpoint(ctx, profile: dict) -> None:
    """An endpoint that is a URL names the server, unless PAI_LAB_URL says otherwise."""
    endpoint = profile.get("endpoint", "")
    if not endpoint.startswith(("http://", "https://")) or os.environ.get("PAI_LAB_URL"):
        return
    token = os.environ.get("PAI_LAB_TOKEN") or profile.get("access_key", "")

    def client():
        from pai_lab.client import PaiClient

        return PaiClient(endpoint, token)

    ctx.client_factory = client
    ctx._client = None
