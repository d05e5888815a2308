"""`pai workspace|member|roles|oplog` against a real `pai server`, as a user types them."""

import json

import pytest


def test_workspace_lifecycle(cli, unique_name):
    name = unique_name("cli")
    rc, out, err = cli("workspace", "create", name, "--description", "from the CLI")
    assert rc == 0, err
    assert f"[Info] Workspace [{name}] created" in out
    rc, out, err = cli("workspace", "ls")
    assert rc == 0
    header, *rows = out.splitlines()
    assert header.split()[:3] == ["NAME", "ID", "MY_ROLES"]
    assert any(r.split()[0] == name and "Owner" in r for r in rows)
    rc, out, _ = cli("workspace", "show", name, "--json")
    shown = json.loads(out)
    assert shown["name"] == name and shown["description"] == "from the CLI" and shown["my_roles"] == ["Owner"]
    rc, out, _ = cli("workspace", "rm", name)
    assert rc == 0 and f"[Info] Workspace [{name}] deleted" in out
    rc, out, err = cli("workspace", "show", name)
    assert rc == 2 and err.count("\n") == 1 and "no workspace named" in err


def test_members_through_the_cli(cli, unique_name):
    name = unique_name("mem")
    assert cli("workspace", "create", name)[0] == 0
    rc, out, err = cli("member", "add", "carol", "--role", "AlgorithmDeveloper,Guest", "-w", name)
    assert rc == 0, err
    rc, out, _ = cli("member", "ls", "-w", name, "--json")
    assert {m["username"]: m["roles"] for m in json.loads(out)} == {
        "owner": ["Owner"],
        "carol": ["AlgorithmDeveloper", "Guest"],
    }
    rc, out, _ = cli("member", "set", "carol", "-r", "AlgorithmOps", "-w", name)
    assert rc == 0
    rc, _, err = cli("member", "rm", "owner", "-w", name)
    assert rc == 2 and "Owner" in err and err.count("\n") == 1
    assert cli("member", "rm", "carol", "-w", name)[0] == 0
    rc, out, _ = cli("member", "ls", "-w", name)
    assert "carol" not in out


def test_batch_member_delete_through_the_cli(cli, unique_name):
    name = unique_name("bat")
    assert cli("workspace", "create", name)[0] == 0
    for user in ("ann", "ben", "cid", "dot", "guest"):
        assert cli("member", "add", user, "-r", "Guest", "-w", name)[0] == 0
    rc, _, err = cli("member", "rm", "ann,owner", "-w", name)  # the Owner in the batch: nobody goes
    assert rc == 2 and "Owner" in err and "nobody was removed" in err
    rc, _, err = cli("member", "rm", "ann,ben", "-w", name, user="guest")
    assert rc == 2 and "may not member.manage" in err
    rc, out, err = cli("member", "rm", "ann,ben", "cid", "-w", name)
    assert rc == 0, err
    assert "[Info] Member(s) [ann, ben, cid] removed" in out
    rc, out, _ = cli("member", "ls", "-w", name, "--json")
    assert sorted(m["username"] for m in json.loads(out)) == ["dot", "guest", "owner"]


def test_batch_member_delete_through_the_python_client(live_server, unique_name):
    from pai_lab.errors import Forbidden

    ws = live_server.client().create_workspace(unique_name("pyb"))
    for user in ("ann", "ben", "cid"):
        ws.members.add(user, "Guest")
    with pytest.raises(Forbidden, match="nobody was removed"):
        ws.members.remove(["ann", "owner"])
    assert ws.members.remove(["ann", "ben"]) == ["ann", "ben"]
    assert ws.members.remove("cid") == ["cid"]
    assert [m.username for m in ws.members] == ["owner"]


@pytest.mark.parametrize(
    "argv, words",
    [
        (["workspace", "create", "9lives"], "invalid workspace name"),
        (["member", "add", "dave", "--role", "Boss"], "unknown role 'Boss'"),
        (["member", "add", "dave"], "--role"),
        (["workspace", "frobnicate"], "invalid choice"),
        (["workspace", "ls", "--colour"], "unrecognized arguments"),
    ],
)
def test_bad_arguments_exit_2_with_one_clear_line(cli, argv, words):
    rc, _out, err = cli(*argv)
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert words in err


def test_guest_is_refused_with_the_reason(cli):
    rc, _, err = cli("member", "add", "eve", "--role", "Guest", user="guest")
    assert rc == 2 and "may not member.manage" in err


def test_roles_and_oplog(cli):
    rc, out, _ = cli("roles")
    assert rc == 0 and out.splitlines()[0].split()[:3] == ["ACTION", "OWNER", "ADMINISTRATOR"]
    assert any(line.startswith("member.manage") for line in out.splitlines())
    cli("member", "add", "oplog_probe", "--role", "Guest")
    rc, out, _ = cli("oplog", "--json")
    assert rc == 0 and any(o["action"] == "member.add" for o in json.loads(out))


def test_version_and_help(capsys):
    from pai_lab import __version__
    from pai_lab.cli import main

    assert main(["--version"]) == 0
    assert __version__ in capsys.readouterr().out
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "workspace" in out and "member" in out and "server" in out
