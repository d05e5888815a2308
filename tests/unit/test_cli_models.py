"""`pai models ls|get|register|delete` against a real `pai server`, as the errors elsewhere tell users to type."""

from __future__ import annotations

import json


def test_models_register_list_get_and_delete(cli, tmp_path, unique_name):
    folder = tmp_path / "saved"
    folder.mkdir()
    (folder / "saved_model.pb").write_bytes(b"")  # what marks a SavedModel folder
    name = unique_name("cli_model")
    rc, out, err = cli("models", "register", name, str(folder), "-d", "by hand")
    assert rc == 0, err
    assert f"[Info] Model [{name}:1] registered" in out
    assert cli("models", "register", name, str(folder))[0] == 0
    rc, out, _ = cli("models", "ls", name, "--json")
    assert [(m["name"], m["version"]) for m in json.loads(out)] == [(name, 2), (name, 1)]
    rc, out, _ = cli("models", "ls")
    header, *rows = out.splitlines()
    assert header.split()[:3] == ["NAME", "VERSION", "PATH"] and any(r.split()[0] == name for r in rows)
    rc, out, _ = cli("models", "get", f"{name}:1", "--json")
    got = json.loads(out)
    assert got["version"] == 1 and got["description"] == "by hand" and got["path"] == str(folder.resolve())
    rc, out, _ = cli("models", "get", name, "--json")  # a bare name: the latest version
    assert json.loads(out)["version"] == 2

    # a Guest reads the registry but changes nothing
    assert cli("models", "ls", name, user="guest")[0] == 0
    rc, _, err = cli("models", "register", name, str(folder), user="guest")
    assert rc == 2 and "may not model.register" in err
    rc, _, err = cli("models", "delete", f"{name}:1", user="guest")
    assert rc == 2 and "may not model.delete" in err

    rc, out, err = cli("models", "rm", f"{name}:1")
    assert rc == 0 and f"[Info] Model [{name}:1] deleted" in out, err
    rc, out, _ = cli("models", "ls", name, "--json")
    assert [m["version"] for m in json.loads(out)] == [2]


def test_models_errors_name_the_fix(cli, tmp_path):
    rc, _, err = cli("models", "register", "not_a_model", str(tmp_path))
    assert rc == 2 and "not a SavedModel folder" in err and err.count("\n") == 1
    rc, _, err = cli("models", "get", "no_such_model:7")
    assert rc == 2 and err.startswith("error: ")
    rc, _, err = cli("models", "frobnicate")
    assert rc == 2 and "invalid choice" in err
