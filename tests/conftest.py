"""Fixtures shared by every test: an in-process Jupyter server with pai_lab (jp_fetch),
a real ``pai server`` subprocess on a temporary root, and helpers to call both as users."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

# Each area keeps its fixtures in tests/fixtures/<area>.py; all of them are loaded here.
_FIXTURES = Path(__file__).parent / "fixtures"
pytest_plugins = ["pytest_jupyter.jupyter_server"] + [
    f"tests.fixtures.{p.stem}" for p in sorted(_FIXTURES.glob("*.py")) if not p.stem.startswith("_")
]

OWNER = "owner"
# user -> token; roles are given per test through the API, as a user would.
USER_TOKENS = {
    "admin": "tok-admin",
    "dev": "tok-dev",
    "ops": "tok-ops",
    "labeladmin": "tok-labeladmin",
    "guest": "tok-guest",
    "stranger": "tok-stranger",
}
ROLE_OF = {
    "admin": "Administrator",
    "dev": "AlgorithmDeveloper",
    "ops": "AlgorithmOps",
    "labeladmin": "LabelingAdmin",
    "guest": "Guest",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def unique_name():
    def make(prefix: str = "w") -> str:
        return f"{prefix}_{uuid.uuid4().hex[:10]}"

    return make


# ---------------------------------------------------------------- in-process server (jp_fetch)


@pytest.fixture
def pai_root(tmp_path) -> Path:
    root = tmp_path / "pai_root"
    root.mkdir()
    return root


@pytest.fixture
def jp_server_config(pai_root, tmp_path_factory, database_url):
    # Fixtures (models, processors, code) are made in pytest's temporary folder: the test servers allow
    # it, as an operator allows a shared data folder. Truly outside paths are made with tempfile.
    return {
        "ServerApp": {
            "jpserver_extensions": {"pai_lab": True},
            "identity_provider_class": "pai_lab.server.identity.NamedTokenIdentityProvider",
        },
        "NamedTokenIdentityProvider": {"user_tokens": USER_TOKENS, "owner_name": OWNER},
        "PaiLabApp": {
            "owner": OWNER,
            "root_dir": str(pai_root),
            "allowed_roots": [str(tmp_path_factory.getbasetemp())],
            "database_url": database_url,  # SQLite in the root, or PostgreSQL (tests/fixtures/postgres.py)
        },
    }


@pytest.fixture
def jp_root_dir(pai_root):
    return pai_root


class Api:
    """Calls the REST API as a named user; returns (status, json) without raising on 4xx."""

    def __init__(self, fetch, owner_header):
        self.fetch = fetch
        self.owner_header = owner_header

    async def __call__(
        self,
        method: str,
        path: str,
        body=None,
        *,
        user: str = OWNER,
        params=None,
        raw_body: bytes | None = None,
        headers=None,
    ):
        from tornado.httpclient import HTTPClientError

        hdrs = dict(headers or {})
        if user is None:
            hdrs["Authorization"] = ""
        elif user != OWNER:
            hdrs["Authorization"] = f"token {USER_TOKENS[user]}"
        kwargs = {"method": method, "headers": hdrs, "params": params or {}}
        if method in ("POST", "PUT", "PATCH"):
            kwargs["body"] = raw_body if raw_body is not None else json.dumps(body if body is not None else {})
        elif method == "DELETE" and body is not None:
            kwargs["allow_nonstandard_methods"] = True
            kwargs["body"] = json.dumps(body)
        try:
            resp = await self.fetch("pai-lab", "api", "v1", *path.strip("/").split("/"), **kwargs)
        except HTTPClientError as exc:
            resp = exc.response
            text = resp.body.decode() if resp is not None and resp.body else ""
            try:
                return exc.code, json.loads(text)
            except ValueError:
                return exc.code, text
        text = resp.body.decode() if resp.body else ""
        try:
            return resp.code, json.loads(text) if text else None
        except ValueError:
            return resp.code, text


@pytest.fixture
def api(jp_fetch, jp_auth_header):
    return Api(jp_fetch, jp_auth_header)


@pytest.fixture
def members(api):
    """Add every test user to a workspace with its role: ``await members("default")``."""

    async def add(workspace: str = "default", **overrides):
        for user, role in {**ROLE_OF, **overrides}.items():
            status, body = await api("POST", f"/workspaces/{workspace}/members", {"username": user, "roles": [role]})
            assert status == 201, body

    return add


# ---------------------------------------------------------------- a real `pai server` subprocess


class LiveServer:
    def __init__(self, root: Path, proc: subprocess.Popen, info: dict):
        self.root = root
        self.proc = proc
        self.url = info["url"]
        self.token = info["token"]
        self.runtime_file = root / ".pai_lab" / "server.json"

    def env(self, user: str = OWNER) -> dict:
        env = dict(os.environ)
        env["PAI_LAB_URL"] = self.url
        env["PAI_LAB_TOKEN"] = self.token if user == OWNER else USER_TOKENS[user]
        return env

    def client(self, user: str = OWNER):
        from pai_lab.client import PaiClient

        return PaiClient(self.url, self.token if user == OWNER else USER_TOKENS[user])

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


def start_pai_server(root: Path, *extra: str, timeout: float = 60) -> LiveServer:
    root.mkdir(parents=True, exist_ok=True)
    runtime = root / ".pai_lab" / "server.json"
    args = [
        sys.executable,
        "-m",
        "pai_lab",
        "server",
        "--root",
        str(root),
        "--port",
        str(free_port()),
        "--owner",
        OWNER,
        "--token",
        "tok-owner-" + uuid.uuid4().hex[:8],
    ]
    # fixtures (models, processors, code) live in pytest's temporary folder and the examples in the
    # repository: the test servers allow both, as an operator allows a shared folder
    args += ["--allowed-root", str(Path(__file__).resolve().parents[1] / "examples")]
    for folder in root.resolve().parents:
        if folder.name.startswith("pytest-") and folder.parent.name.startswith("pytest-of-"):
            args += ["--allowed-root", str(folder)]
    for user, token in USER_TOKENS.items():
        args += ["--user", f"{user}={token}"]
    from tests.fixtures import postgres  # (a plugin of this file: imported once pytest loaded it)

    if postgres.STORE == "postgresql" and "--database-url" not in extra:  # the whole suite on PostgreSQL
        args += ["--database-url", postgres.database_for_root(root)]
    log = open(root / "server.log", "ab")  # noqa: SIM115 - the server's log: it outlives this call
    proc = subprocess.Popen([*args, *extra], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"pai server exited with {proc.returncode}:\n" + (root / "server.log").read_text()[-3000:]
            )
        if runtime.exists():
            try:
                info = json.loads(runtime.read_text())
            except ValueError:
                info = None
            if info:
                return LiveServer(root, proc, info)
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(
        "pai server did not write its runtime file in time:\n" + (root / "server.log").read_text()[-3000:]
    )


@pytest.fixture(scope="session")
def live_server(request, tmp_path_factory):
    """One `pai server` for the session; tests make their own workspaces (``unique_name``). Tests in
    tests/fixtures/postgres.py's BOTH_STORES also get a second one, on PostgreSQL (every test does, with
    PAI_LAB_TEST_STORE=postgresql)."""
    from tests.fixtures import postgres

    extra = []
    param = getattr(request, "param", None)  # BOTH_STORES' own; else start_pai_server follows the test store
    if param == "postgresql":
        extra = ["--database-url", request.getfixturevalue("live_postgres_database")]
    elif param == "sqlite" and postgres.STORE == "postgresql":
        extra = ["--database-url", ""]  # SQLite in its root, as asked
    server = start_pai_server(tmp_path_factory.mktemp("live") / "root", *extra)
    client = server.client()
    for user, role in ROLE_OF.items():
        client.workspace("default").members.add(user, [role])
    yield server
    server.stop()


@pytest.fixture
def cli(live_server, monkeypatch, capsys):
    """Run `pai ...` in-process against the live server: ``rc, out, err = cli("workspace", "ls")``."""
    from pai_lab.cli import main

    def run(*argv: str, user: str = OWNER):
        monkeypatch.setenv("PAI_LAB_URL", live_server.url)
        monkeypatch.setenv("PAI_LAB_TOKEN", live_server.token if user == OWNER else USER_TOKENS[user])
        capsys.readouterr()
        rc = main(list(argv))
        out, err = capsys.readouterr()
        return rc, out, err

    return run


def _work_unit(item) -> str | None:
    """The group a test must run in, on one worker, when the suite runs in parallel (pytest-xdist with
    ``--dist loadgroup``); None: any worker, alone. A module whose tests share a module-scoped fixture (a
    JupyterHub, a cluster of hosts, a notebook server, a trained model) is one unit, so that fixture starts
    once and not on every worker."""
    defs = item._fixtureinfo.name2fixturedefs
    if any(found and found[-1].scope in ("module", "package", "class") for found in defs.values()):
        return item.nodeid.split("::", 1)[0]
    return None


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups off the tests
def pytest_collection_modifyitems(config, items):
    # Browser tests run last: Playwright's sync API keeps an event loop running in this thread for
    # the rest of the session, which the in-process server tests (jp_fetch) cannot share. In parallel
    # runs the work units are handed out in this order (--no-loadscope-reorder), so on each worker too.
    items.sort(key=lambda item: "tests/e2e/" in item.nodeid.replace("\\", "/"))
    if config.pluginmanager.hasplugin("xdist"):
        for item in items:
            unit = _work_unit(item)
            if unit is not None:
                item.add_marker(pytest.mark.xdist_group(unit))


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A home folder of the test's own (profiles such as ~/.eas/config and ~/.dlc/config land there)."""
    folder = tmp_path / "home"
    folder.mkdir()
    monkeypatch.setenv("HOME", str(folder))
    return folder
