"""`%pai` and `%%pai` in a real IPython shell, against a real `pai server`."""

import pandas as pd
import pytest
from IPython.core.interactiveshell import InteractiveShell


@pytest.fixture
def ip(live_server, monkeypatch):
    monkeypatch.setenv("PAI_LAB_URL", live_server.url)
    monkeypatch.setenv("PAI_LAB_TOKEN", live_server.token)
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "pai_lab")
    return shell


def test_line_magic_returns_a_dataframe(ip):
    frame = ip.run_line_magic("pai", "workspace ls")
    assert isinstance(frame, pd.DataFrame)
    assert "default" in list(frame["name"])
    members = ip.run_line_magic("pai", "member ls")
    assert dict(zip(members["username"], members["roles"]))["owner"] == ["Owner"]


def test_cell_magic_passes_the_body_as_a_file(ip, unique_name, capsys):
    name = unique_name("cell")
    created = ip.run_cell_magic(
        "pai", "workspace create", f"name: {name}\ndescription: made in a cell\nmembers:\n  frank: [AlgorithmOps]\n"
    )
    assert created["name"] == name and created["description"] == "made in a cell"
    members = ip.run_line_magic("pai", f"member ls -w {name}")
    assert set(members["username"]) == {"owner", "frank"}
    assert "[Info] Workspace" in capsys.readouterr().out


def test_bad_arguments_print_one_line_and_return_none(ip, capsys):
    assert ip.run_line_magic("pai", "member add dave --role Boss") is None
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown role 'Boss'" in err
    assert ip.run_line_magic("pai", "workspace nope") is None
    assert "invalid choice" in capsys.readouterr().err
    assert ip.run_cell_magic("pai", "workspace create", "name: [not, a, name]\n") is None
