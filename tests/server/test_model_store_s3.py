"""A workspace whose storage is S3 (a moto server on loopback): `pai eascmd upload` puts the package in its
bucket and prints the s3:// path, and `pai eascmd create` deploys from that path with the workspace's options."""

from __future__ import annotations

import tarfile
import uuid
from pathlib import Path

import pytest

from pai_lab.errors import BadInput, Forbidden


@pytest.fixture
def s3_workspace(live_server, s3_bucket):
    bucket, options = s3_bucket
    name = f"s3ws{uuid.uuid4().hex[:8]}"
    ws = live_server.client().create_workspace(name)
    ws.members.add("dev", "AlgorithmDeveloper")
    return ws, bucket, options


def test_upload_to_the_workspaces_bucket_then_deploy_from_the_printed_path(
    cli, home, live_server, s3_server, s3_workspace, saved_model, service_json, tmp_path
):
    import fsspec

    ws, bucket, options = s3_workspace
    plain = {"endpoint_url": s3_server, "key": options["key"], "secret": options["secret"]}
    with pytest.raises(Forbidden) as refused:
        live_server.client("dev").workspace(ws.name).set_storage(f"s3://{bucket}/models", plain)
    assert refused.value.field == "role" and "resource.manage" in refused.value.message
    with pytest.raises(BadInput) as bad:
        ws.set_storage("ftp://example/models", plain)
    assert bad.value.field == "model_store"
    with pytest.raises(BadInput) as missing:
        ws.set_storage("s3://no-such-bucket-here/models", plain)
    assert missing.value.field == "model_store"
    shown = ws.set_storage(f"s3://{bucket}/models", plain)
    assert shown["storage_options"]["secret"] == "***" and ws.storage()["model_store"] == f"s3://{bucket}/models"

    archive = tmp_path / "savedmodel_example.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(saved_model, arcname=".")
    rc, out, err = cli("eascmd", "upload", str(archive), "--prefix", "savedmodel_example", "-w", ws.name)
    assert rc == 0, err
    target = out.splitlines()[1].removeprefix("[OK] oss target path: [").removesuffix("]")
    assert target == f"s3://{bucket}/models/owner/savedmodel_example/savedmodel_example.tar.gz"
    fs = fsspec.filesystem("s3", **options)
    assert fs.info(target)["size"] == archive.stat().st_size
    assert not (live_server.root / "eas-models" / ws.name).exists()  # nothing in the server's folder

    name = f"s3model_{uuid.uuid4().hex[:8]}"
    spec = {"name": name, "model_path": target, "processor": "tensorflow_cpu_1.12", "metadata": {"instance": 0}}
    rc, _, err = cli("eascmd", "create", "--no-wait", service_json(spec), "-w", ws.name)
    assert rc == 0, err
    model_dir = Path(ws.services.get(name).info.model_dir)
    assert (model_dir / "saved_model.pb").is_file()  # fetched from the bucket with the workspace's options
    assert cli("eascmd", "delete", name, "-y", "-w", ws.name)[0] == 0

    ws.set_storage("")  # back to the server's folder
    rc, out, err = cli("eascmd", "upload", str(archive), "-w", ws.name)
    assert (
        rc == 0
        and (live_server.root / "eas-models" / ws.name).resolve()
        in Path(out.splitlines()[1].removeprefix("[OK] oss target path: [").removesuffix("]")).resolve().parents
    )
