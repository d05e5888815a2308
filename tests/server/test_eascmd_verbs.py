"""The eascmd verbs a seed script begins with: config and -c profiles, -w on every verb, test, resource.
Run through the `pai` CLI against a real `pai server` (its Dask cluster is the one resource group)."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest


@pytest.fixture
def workspace(live_server):
    name = f"eas{uuid.uuid4().hex[:8]}"
    live_server.client().create_workspace(name)
    return name


def echo_spec(name: str, python_processor) -> dict:
    return {
        "name": name,
        "processor_type": "python",
        "processor_path": str(python_processor),
        "processor_entry": "app.py",
        "metadata": {"instance": 1, "cpu": 1},
    }


def test_a_seed_script_config_create_test_runs_in_the_profiles_workspace(
    cli, home, workspace, service_json, python_processor
):
    rc, out, err = cli(
        "eascmd",
        "config",
        "-i",
        "LTAI5tExample",
        "-k",
        "secretExample",
        "-e",
        "pai-eas.cn-shanghai.aliyuncs.com",
        "-w",
        workspace,
    )
    profile = home / ".eas" / "config"
    assert rc == 0, err
    assert out.strip() == f"Configuration saved to: {profile}"
    assert stat.S_IMODE(profile.stat().st_mode) == 0o600
    assert "secretExample" in profile.read_text()

    name = f"echo_{uuid.uuid4().hex[:8]}"
    rc, out, err = cli("eascmd", "create", service_json(echo_spec(name, python_processor)))
    assert rc == 0, err
    assert "[OK] Service is running" in out

    rc, out, err = cli("eascmd", "test", name, "-d", json.dumps({"values": [1, 2]}))
    assert rc == 0, err
    assert json.loads(out) == {"sum": 3, "n": 2}

    # the service is in the profile's workspace, named either way with -w, and not in default
    for argv in (("eascmd", "-w", workspace, "ls"), ("eascmd", "ls", "-w", workspace), ("eascmd", "ls")):
        rc, out, err = cli(*argv)
        assert rc == 0 and name in out, (argv, err)
    rc, out, _ = cli("eascmd", "ls", "-w", "default")
    assert rc == 0 and name not in out

    rc, out, err = cli("eascmd", "delete", name, "-y")
    assert rc == 0, err


def test_create_and_modify_print_the_servers_warnings_on_stderr(cli, home, workspace, service_json, python_processor):
    name = f"warn_{uuid.uuid4().hex[:8]}"
    spec = echo_spec(name, python_processor)
    spec["metadata"] = {"instance": 0, "qos": "BestEffort"}
    rc, out, err = cli("eascmd", "create", "--no-wait", service_json(spec), "-w", workspace)
    assert rc == 0, err
    assert any(line.startswith("[WARN] metadata.qos is ignored: ") for line in err.splitlines()), err
    assert "[WARN]" not in out
    rc, out, err = cli("eascmd", "modify", name, "-Dmetadata.gpu_memory=8", "--no-wait", "-w", workspace)
    assert rc == 0, err
    assert any(line.startswith("[WARN] metadata.gpu_memory is ignored: ") for line in err.splitlines()), err
    assert cli("eascmd", "delete", name, "-y", "-w", workspace)[0] == 0


def test_c_selects_another_profile_and_a_missing_one_is_named(
    cli, home, workspace, live_server, service_json, tmp_path
):
    other = tmp_path / "shanghai2.conf"
    rc, out, err = cli(
        "eascmd", "-c", str(other), "config", "-i", "id", "-k", "key", "-e", live_server.url, "-w", workspace
    )
    assert rc == 0 and str(other) in out, err
    assert not (home / ".eas" / "config").exists()

    # an endpoint that is a URL names the server itself: a terminal with no PAI_LAB_URL reaches it
    env = {k: v for k, v in live_server.env().items() if k != "PAI_LAB_URL"}
    done = subprocess.run(
        [sys.executable, "-m", "pai_lab", "eascmd", "-c", str(other), "resource", "ls"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "| default" in done.stdout

    rc, _, err = cli("eascmd", "-c", str(tmp_path / "missing.conf"), "ls")
    assert rc == 2 and "-c " in err and "missing.conf" in err and "pai eascmd" in err


def test_test_names_a_missing_service_or_data_file(cli, home, workspace):
    rc, _, err = cli("eascmd", "test", "nosuch", "-d", "{}", "-w", workspace)
    assert rc == 2 and "nosuch" in err
    rc, _, err = cli("eascmd", "test", "nosuch", "-d", "@/no/such/file", "-w", workspace)
    assert rc == 2 and "-d @/no/such/file" in err


def test_resource_groups_list_describe_and_show_their_instances(cli, home, live_server):
    workers = live_server.client().workspace("default").jobs.cluster().workers

    rc, out, err = cli("eascmd", "resource", "ls")
    assert rc == 0, err
    header = out.splitlines()[1]
    assert [h.strip() for h in header.strip("|").split("|")] == [
        "RESOURCENAME",
        "CLUSTERID",
        "INSTANCECOUNT",
        "GPUCOUNT",
        "CPUCOUNT",
        "OWNERUID",
        "CREATETIME",
        "STATUS",
    ]
    row = [c.strip() for c in out.splitlines()[3].strip("|").split("|")]
    assert row[0] == "default" and row[2] == str(len(workers))
    assert row[4] == str(sum(w.cores for w in workers))

    rc, out, err = cli("eascmd", "resource", "desc", "default")
    assert rc == 0, err
    for field in ("ResourceName", "CpuCount", "GpuCount", "LastStatus", "VpcId", "AuxVSwitchList"):
        assert f"| {field}" in out

    rc, out, err = cli("eascmd", "resource", "li", "default", "--json")
    assert rc == 0, err
    assert sorted(w["name"] for w in json.loads(out)) == sorted(w.name for w in workers)
    rc, out, _ = cli("eascmd", "resource", "list_instance", "default")
    assert all(w.name in out for w in workers)

    rc, _, err = cli("eascmd", "resource", "desc", "eas-r-lzo32vrdbtukr7te3i")
    assert rc == 2 and "eas-r-lzo32vrdbtukr7te3i" in err and "resource ls" in err


def test_resource_network_checks_the_manuals_config(cli, home, tmp_path):
    cfg = tmp_path / "network.json"
    cfg.write_text(
        json.dumps(
            {
                "Action": "create",
                "VSwitchId": "vsw-1",
                "SecurityGroupId": "sg-1",
                "VSwitchIdList": ["vsw-2"],
                "DestinationCIDR": "192.168.0.0/16",
            }
        )
    )
    rc, out, err = cli("eascmd", "resource", "network", "default", "-s", str(cfg))
    assert rc == 0 and "create accepted" in out, err

    cfg.write_text(json.dumps({"Action": "create", "VSwitchId": "vsw-1"}))
    rc, _, err = cli("eascmd", "resource", "network", "default", "-s", str(cfg))
    assert rc == 2 and "SecurityGroupId" in err


def test_upload_prints_the_model_path_that_create_then_takes(
    cli, home, saved_model, service_json, tmp_path, live_server
):
    import tarfile

    archive = tmp_path / "savedmodel_example.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(saved_model, arcname=".")
    rc, out, err = cli("eascmd", "upload", str(archive), "--prefix", "savedmodel_example", "--inner")
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("[OK] oss endpoint:")
    target = lines[1].removeprefix("[OK] oss target path: [").removesuffix("]")
    assert target.endswith("/savedmodel_example/savedmodel_example.tar.gz")
    assert f"Succeed: Total num: 1, size: {archive.stat().st_size:,}. OK num: 1(upload 1 files)." in out
    assert Path(target).is_file()
    assert (live_server.root / "eas-models" / "default").resolve() in Path(target).resolve().parents

    name = f"mnist_{uuid.uuid4().hex[:8]}"
    spec = {"name": name, "model_path": target, "processor": "tensorflow_cpu_1.12", "metadata": {"instance": 0}}
    rc, _, err = cli("eascmd", "create", "--no-wait", service_json(spec))
    assert rc == 0, err
    assert cli("eascmd", "delete", name, "-y")[0] == 0


def test_upload_is_refused_to_a_guest_and_outside_the_store(cli, home, tmp_path):
    package = tmp_path / "m.tar.gz"
    package.write_bytes(b"not really")
    rc, _, err = cli("eascmd", "upload", str(package), user="guest")
    assert rc == 2 and "guest" in err.lower(), err
    rc, _, err = cli("eascmd", "upload", str(package), "--prefix", "../../elsewhere")
    assert rc == 2 and "path" in err and ".." in err
    rc, _, err = cli("eascmd", "upload", str(tmp_path / "missing.tar.gz"))
    assert rc == 2 and "missing.tar.gz" in err
