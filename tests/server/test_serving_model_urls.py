"""model_path and processor_path as http(s) URLs, as the manual's own `create` example gives them:
read only under the operator's allowed prefixes, archives unpacked, downloaded once per ETag."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import threading
import uuid
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import start_pai_server


class Files:
    """A small web server: ``files[path] = bytes``; each answer carries an ETag; GETs are counted."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.gets: dict[str, int] = {}
        self.redirects: dict[str, str] = {}
        files = self

        class Handler(BaseHTTPRequestHandler):
            def _head(self, send_body: bool):
                if self.path in files.redirects:
                    self.send_response(302)
                    self.send_header("Location", files.redirects[self.path])
                    self.end_headers()
                    return
                data = files.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                if send_body:
                    files.gets[self.path] = files.gets.get(self.path, 0) + 1
                self.send_response(200)
                self.send_header("ETag", '"' + hashlib.md5(data).hexdigest() + '"')
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if send_body:
                    self.wfile.write(data)

            def do_HEAD(self):
                self._head(False)

            def do_GET(self):
                self._head(True)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def tar_gz(folder: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path in sorted(folder.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(folder)), recursive=False)
    return buf.getvalue()


def zipped(folder: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            zf.write(path, str(path.relative_to(folder)))
    return buf.getvalue()


@pytest.fixture(scope="module")
def web():
    files = Files()
    yield files
    files.server.shutdown()


@pytest.fixture(scope="module")
def url_server(tmp_path_factory, web):
    """A `pai server` whose owner allows URLs under <web>/models only."""
    server = start_pai_server(tmp_path_factory.mktemp("urls") / "root", "--allowed-url-prefix", f"{web.url}/models")
    yield server
    server.stop()


@pytest.fixture
def eascmd(url_server, monkeypatch, capsys):
    from pai_lab.cli import main

    def run(*argv: str):
        monkeypatch.setenv("PAI_LAB_URL", url_server.url)
        monkeypatch.setenv("PAI_LAB_TOKEN", url_server.token)
        capsys.readouterr()
        rc = main(["eascmd", *argv])
        out, err = capsys.readouterr()
        return rc, out, err

    return run


def test_the_manuals_create_example_runs_from_an_http_tar_gz(eascmd, web, saved_model, service_json, url_server):
    # the manual's URL, with its encoded slash, on a local web server
    web.files["/models%2Fmnist_saved_model.tar.gz"] = tar_gz(saved_model)
    name = f"mnist_saved_model_example_{uuid.uuid4().hex[:6]}"
    manual = {
        "name": name,
        "generate_token": "true",
        "model_path": f"{web.url}/models%2Fmnist_saved_model.tar.gz",
        "processor": "tensorflow_cpu_1.12",
        "metadata": {"instance": 1, "cpu": 1},
    }
    rc, out, err = eascmd("create", service_json(manual))
    assert rc == 0, err
    assert "[OK] Service is running" in out
    assert f"[OK] Loading model [{manual['model_path']}]" in out
    svc = url_server.client().workspace("default").services.get(name)
    assert svc.signature()["signature_name"] == "predict_images"

    # the same object again (same ETag) is not downloaded again
    again = {**manual, "name": name + "_b", "metadata": {"instance": 0}}
    rc, _, err = eascmd("create", "--no-wait", service_json(again, "again.json"))
    assert rc == 0, err
    assert web.gets["/models%2Fmnist_saved_model.tar.gz"] == 1
    for n in (name, name + "_b"):
        assert eascmd("delete", n, "-y")[0] == 0


def test_a_zip_processor_over_http_is_fetched_again_when_its_etag_changes(
    eascmd, web, python_processor, service_json, tmp_path
):
    web.files["/models/echo.zip"] = zipped(python_processor)
    name = f"echo_{uuid.uuid4().hex[:6]}"
    spec = {
        "name": name,
        "processor_type": "python",
        "processor_path": f"{web.url}/models/echo.zip",
        "processor_entry": "app.py",
        "metadata": {"instance": 1},
    }
    rc, out, err = eascmd("create", service_json(spec))
    assert rc == 0, err
    rc, out, err = eascmd("test", name, "-d", json.dumps({"values": [1, 2]}))
    assert rc == 0 and json.loads(out) == {"sum": 3, "n": 2}, err

    changed = tmp_path / "changed"
    changed.mkdir()
    (changed / "app.py").write_text((python_processor / "app.py").read_text() + "\n# version 2\n")
    web.files["/models/echo.zip"] = zipped(changed)
    rc, _, err = eascmd(
        "modify", name, "-s", service_json({"processor_path": f"{web.url}/models/echo.zip"}, "change.json")
    )
    assert rc == 0, err
    assert web.gets["/models/echo.zip"] == 2
    assert eascmd("delete", name, "-y")[0] == 0


def test_urls_outside_the_allowed_prefixes_redirects_and_escaping_archives_are_refused(
    eascmd, web, service_json, tmp_path
):
    def create(model_path: str):
        spec = {
            "name": f"bad_{uuid.uuid4().hex[:6]}",
            "model_path": model_path,
            "processor": "tensorflow_cpu_2.7",
            "metadata": {"instance": 0},
        }
        return eascmd("create", "--no-wait", service_json(spec, "bad.json"))

    web.files["/elsewhere/m.tar.gz"] = b"x"
    rc, _, err = create(f"{web.url}/elsewhere/m.tar.gz")
    assert rc == 2 and "model_path" in err and "allowed_url_prefixes" in err
    assert "/elsewhere/m.tar.gz" not in web.gets  # refused before any request

    web.redirects["/models/moved.tar.gz"] = f"{web.url}/elsewhere/m.tar.gz"
    rc, _, err = create(f"{web.url}/models/moved.tar.gz")
    assert rc == 2 and "model_path" in err and "redirects" in err

    rc, _, err = create(f"{web.url}/models/missing.tar.gz")
    assert rc == 2 and "model_path" in err and "404" in err

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("../../escaped.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    web.files["/models/evil.tar.gz"] = buf.getvalue()
    rc, _, err = create(f"{web.url}/models/evil.tar.gz")
    assert rc == 2 and "model_path" in err and "unpacked" in err
