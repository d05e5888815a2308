"""PAI-TF's ``-Dscript=s3://BUCKET/code.tar.gz`` (and ``oss://``) through the `pai` CLI, on a moto S3 server:
fetched with the workspace's storage options (never the server's own credentials), unpacked as a local archive is,
``-DentryFile`` inside it; refused, naming ``script``, where the workspace declares no credentials."""

from __future__ import annotations

import io
import tarfile

import pytest

pytestmark = pytest.mark.s3

ENTRY = "import util, sys\nprint(util.GREETING, sys.argv[1:], flush=True)\n"


def _archive() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for member, text in (("pkg/main.py", ENTRY), ("pkg/util.py", "GREETING = 'hello from the bucket'\n")):
            data = text.encode()
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _put(options: dict, key: str, data: bytes) -> None:
    import s3fs

    s3fs.S3FileSystem(key=options["key"], secret=options["secret"], client_kwargs=options["client_kwargs"]).pipe(
        key, data
    )


def test_a_script_archive_in_the_workspaces_bucket_runs(cli, live_server, unique_name, s3_server, s3_bucket):
    bucket, options = s3_bucket
    name = unique_name("tfs3")
    ws = live_server.client().create_workspace(name)
    _put(options, f"{bucket}/store/code/code.tar.gz", _archive())
    _put(options, f"{bucket}/elsewhere.tar.gz", _archive())

    # no storage declared: the server's own credentials would answer, so the script is refused
    rc, _out, err = cli(
        "-name", "tensorflow1120_ext", "-w", name, f"-Dscript=s3://{bucket}/store/code/code.tar.gz",
        "-DentryFile=pkg/main.py",
    )  # fmt: skip
    assert rc == 2 and "(field: script)" in err and "credentials" in err, err

    ws.set_storage(
        f"s3://{bucket}/store", {"endpoint_url": s3_server, "key": options["key"], "secret": options["secret"]}
    )
    rc, out, err = cli(
        "-name", "tensorflow1120_ext", "-w", name, f"-Dscript=s3://{bucket}/store/code/code.tar.gz",
        "-DentryFile=pkg/main.py", '-Dcluster={"worker":{"count":1,"cpu":100,"memory":1000}}',
        "-DuserDefinedParameters=--steps=1",
    )  # fmt: skip
    assert rc == 0, out + err
    job = ws.jobs.get(out.split("JobId: ", 1)[1].split()[0])
    assert job.state == "Succeeded", job.reason
    assert "hello from the bucket" in job.logs(0) and "--steps=1" in job.logs(0)

    # oss:// is read as S3-compatible storage, the endpoint from the workspace's options
    ws.set_storage(
        f"oss://{bucket}/store", {"endpoint_url": s3_server, "key": options["key"], "secret": options["secret"]}
    )
    rc, out, err = cli(
        "-name", "tensorflow1120_ext", "-w", name, f"-Dscript=oss://{bucket}/store/code/code.tar.gz",
        "-DentryFile=pkg/main.py", "-DuserDefinedParameters=--from=oss",
    )  # fmt: skip
    assert rc == 0, out + err
    assert "--from=oss" in ws.jobs.get(out.split("JobId: ", 1)[1].split()[0]).logs(0)

    # outside the workspace's store: no options of the workspace reach it, refused as above
    rc, _out, err = cli(
        "-name", "tensorflow1120_ext", "-w", name, f"-Dscript=s3://{bucket}/elsewhere.tar.gz",
        "-DentryFile=pkg/main.py",
    )  # fmt: skip
    assert rc == 2 and "(field: script)" in err, err
    # an object that is not there, an entry not in the archive, a prefix rather than an object
    for script, entry, wanted in (
        (f"s3://{bucket}/store/code/missing.tar.gz", "pkg/main.py", "not found"),
        (f"s3://{bucket}/store/code/code.tar.gz", "pkg/other.py", "is not in -Dscript"),
        (f"s3://{bucket}/store/code/", "pkg/main.py", "one object"),
    ):
        rc, _out, err = cli("-name", "tensorflow1120_ext", "-w", name, f"-Dscript={script}", f"-DentryFile={entry}")
        assert rc == 2 and wanted in err, (script, err)
