"""The client every door uses: kernel code, ``%pai`` magics, the ``pai`` CLI and the widgets.

>>> import pai_lab
>>> ws = pai_lab.connect()            # the "default" workspace
>>> ws.members.add("alice", ["AlgorithmDeveloper"])
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from pai_lab.client.discovery import API_PATH, ServerInfo, discover
from pai_lab.client.http import Http
from pai_lab.workspaces.schemas import Me, Member, Operation, RoleMatrix, Workspace

if TYPE_CHECKING:  # pandas and the area clients load on first use: the CLI starts faster without them
    import pandas as pd

    from pai_lab.client.datasets import Datasets
    from pai_lab.client.jobs import Jobs
    from pai_lab.client.labeling import Labeling
    from pai_lab.client.models import Models
    from pai_lab.client.pipelines import Pipelines
    from pai_lab.client.resources import ResourceGroups
    from pai_lab.client.services import Services


def table(rows: list, columns: list[str] | None = None) -> pd.DataFrame:
    """Models (or dicts) as a DataFrame: what the notebook shows and what `--json` leaves out."""
    import pandas as pd

    records = [r.model_dump() if hasattr(r, "model_dump") else dict(r) for r in rows]
    frame = pd.DataFrame.from_records(records, columns=columns) if records else pd.DataFrame(columns=columns)
    return frame


class PaiClient:
    """The server as a whole: workspaces, the caller, the role matrix."""

    def __init__(self, url: str | None = None, token: str | None = None, *, http: Http | None = None):
        if http is None:
            info = ServerInfo(url, token or "", "argument") if url else discover()
            http = Http(info)
        self.http = http

    def me(self) -> Me:
        return Me.model_validate(self.http.get("/me"))

    def roles(self) -> RoleMatrix:
        return RoleMatrix.model_validate(self.http.get("/roles"))

    def workspaces(self) -> list[Workspace]:
        return [Workspace.model_validate(w) for w in self.http.get("/workspaces")]

    @cached_property
    def resource_groups(self) -> ResourceGroups:
        """The Dask clusters jobs run on (``default`` and the operator's); shown as a table."""
        from pai_lab.client.resources import ResourceGroups

        return ResourceGroups(self)

    def create_workspace(self, name: str, description: str = "") -> WorkspaceClient:
        info = Workspace.model_validate(self.http.post("/workspaces", {"name": name, "description": description}))
        return WorkspaceClient(self, info.name, info)

    def delete_workspace(self, name: str) -> None:
        self.http.delete(f"/workspaces/{name}")

    def workspace(self, name: str = "default") -> WorkspaceClient:
        return WorkspaceClient(self, name)


class Members:
    """``ws.members``: iterate, index by name, add/set/remove; shown as a table in a notebook."""

    def __init__(self, ws: WorkspaceClient):
        self._ws = ws

    def list(self) -> list[Member]:
        return [Member.model_validate(m) for m in self._ws._get("/members")]

    def add(self, username: str, roles: list[str] | str) -> Member:
        roles = [roles] if isinstance(roles, str) else list(roles)
        return Member.model_validate(self._ws._post("/members", {"username": username, "roles": roles}))

    def set(self, username: str, roles: list[str] | str) -> Member:
        roles = [roles] if isinstance(roles, str) else list(roles)
        return Member.model_validate(self._ws._patch(f"/members/{username}", {"roles": roles}))

    def remove(self, usernames: str | list[str]) -> list[str]:
        """Remove one member, or several at once (all or none: an unknown name removes nobody).
        Returns the names removed."""
        names = [usernames] if isinstance(usernames, str) else list(usernames)
        if len(names) == 1:
            self._ws._delete(f"/members/{names[0]}")
            return names
        return list(self._ws._post("/member-removals", {"usernames": names})["removed"])

    def to_pandas(self) -> pd.DataFrame:
        return table(self.list(), ["username", "roles", "added_by", "added_at"])

    def __iter__(self):
        return iter(self.list())

    def __len__(self) -> int:
        return len(self.list())

    def __getitem__(self, username: str) -> Member:
        for m in self.list():
            if m.username == username:
                return m
        raise KeyError(username)

    def __contains__(self, username: str) -> bool:
        return any(m.username == username for m in self.list())

    def _repr_html_(self) -> str:
        return self.to_pandas().to_html(index=False)

    def __repr__(self) -> str:
        return (
            f"<members of {self._ws.name}: "
            + ", ".join(f"{m.username} ({'/'.join(m.roles)})" for m in self.list())
            + ">"
        )


class WorkspaceClient:
    """A workspace seen from a client. Area APIs are attributes: ``ws.datasets``, ``ws.jobs``..."""

    def __init__(self, client: PaiClient, name: str, info: Workspace | None = None):
        self.client = client
        self.name = name
        self._info = info
        self.members = Members(self)

    @property
    def http(self) -> Http:
        return self.client.http

    def _path(self, path: str) -> str:
        return f"/workspaces/{self.name}{path}"

    def api_path(self, path: str = "") -> str:
        """This workspace's REST path (plus ``path``) below the server's base URL, as a page the same
        Jupyter server serves asks for it: ``pai-lab/api/v1/workspaces/<name><path>``."""
        return API_PATH + self._path(path)

    def _get(self, path: str = "", **kw):
        return self.http.get(self._path(path), **kw)

    def _post(self, path: str = "", json=None, **kw):
        return self.http.post(self._path(path), json, **kw)

    def _patch(self, path: str = "", json=None, **kw):
        return self.http.patch(self._path(path), json, **kw)

    def _put(self, path: str = "", json=None, **kw):
        return self.http.put(self._path(path), json, **kw)

    def _delete(self, path: str = "", **kw):
        return self.http.delete(self._path(path), **kw)

    def info(self) -> Workspace:
        self._info = Workspace.model_validate(self._get())
        return self._info

    def update(self, *, name: str | None = None, description: str | None = None) -> Workspace:
        body = {k: v for k, v in {"name": name, "description": description}.items() if v is not None}
        self._info = Workspace.model_validate(self._patch("", body))
        self.name = self._info.name
        return self._info

    def oplog(self, limit: int = 100) -> pd.DataFrame:
        ops = [Operation.model_validate(o) for o in self._get("/oplog", params={"limit": limit})]
        return table(ops, ["at", "actor", "action", "target", "result", "detail"])

    @property
    def resource_group(self) -> str:
        """The resource group this workspace's jobs run on."""
        return str(self._get("/resource-group")["resource_group"])

    def set_resource_group(self, name: str) -> str:
        """Choose among the operator's groups (Owner, Administrator); jobs submitted next run there."""
        return str(self._put("/resource-group", {"resource_group": name})["resource_group"])

    def storage(self) -> dict:
        """Where `eascmd upload` puts model packages: ``{"model_store": "", "storage_options": {}}`` is the
        server's folder; secrets come back as ``***``."""
        return dict(self._get("/storage"))

    def set_storage(self, model_store: str = "", storage_options: dict | None = None) -> dict:
        """Point the model store at ``s3://bucket/prefix`` (or oss://) with the s3fs options that reach it
        (endpoint_url, key, secret...), or back at the server's folder with ``""`` (Owner, Administrator)."""
        body = {"model_store": model_store, "storage_options": storage_options or {}}
        return dict(self._put("/storage", body))

    # The area clients, each in its own module, imported on first use (numpy, pandas and the areas'
    # schemas stay out of a plain `import pai_lab`).
    @cached_property
    def datasets(self) -> Datasets:
        from pai_lab.client.datasets import Datasets

        return Datasets(self)

    @cached_property
    def labeling(self) -> Labeling:
        from pai_lab.client.labeling import Labeling

        return Labeling(self)

    @cached_property
    def jobs(self) -> Jobs:
        from pai_lab.client.jobs import Jobs

        return Jobs(self)

    @cached_property
    def models(self) -> Models:
        from pai_lab.client.models import Models

        return Models(self)

    @cached_property
    def services(self) -> Services:
        from pai_lab.client.services import Services

        return Services(self)

    @cached_property
    def pipelines(self) -> Pipelines:
        from pai_lab.client.pipelines import Pipelines

        return Pipelines(self)

    # (label, list route) of what the notebook display counts
    _COUNTED = (
        ("datasets", "/datasets"),
        ("labeling tasks", "/labeling/tasks"),
        ("jobs", "/jobs"),
        ("services", "/services"),
    )

    def counts(self) -> dict[str, int | None]:
        """How many datasets, labeling tasks, jobs and services the workspace holds (None: not readable)."""
        from concurrent.futures import ThreadPoolExecutor

        from pai_lab.errors import PaiError

        def count(route: str) -> int | None:
            try:
                return len(self._get(route))
            except PaiError:  # a role that may not list an area, or an area this server lacks
                return None

        with ThreadPoolExecutor(len(self._COUNTED)) as pool:
            found = list(pool.map(count, [route for _label, route in self._COUNTED]))
        return {label: n for (label, _route), n in zip(self._COUNTED, found)}

    def _repr_html_(self) -> str:
        from html import escape

        info, members, counts = self.info(), self.members.list(), self.counts()
        figures = " &middot; ".join(f"<b>{'—' if n is None else n}</b> {escape(label)}" for label, n in counts.items())
        rows = "".join(f"<tr><td>{escape(m.username)}</td><td>{escape(', '.join(m.roles))}</td></tr>" for m in members)
        return (
            f"<div class='pai-lab-workspace'><b>workspace {escape(info.name)}</b>"
            + (f" &mdash; {escape(info.description)}" if info.description else "")
            + f"<br><span>{figures}</span>"
            + f"<br><small>at {escape(self.http.info.url)}; your roles: {escape(', '.join(info.my_roles))}</small>"
            + "<table><tr><th style='text-align:left'>member</th><th style='text-align:left'>roles</th></tr>"
            + f"{rows}</table></div>"
        )

    def __repr__(self) -> str:
        return f"<pai_lab workspace {self.name!r} at {self.http.info.url}>"


def connect(
    workspace: str = "default",
    *,
    url: str | None = None,
    token: str | None = None,
    start: bool = False,
    timeout: float = 120,
) -> WorkspaceClient:
    """Connect to the control plane and return one workspace's client.

    The server is found from ``url``/``token``, ``PAI_LAB_URL``, the Jupyter server this process runs
    under, or the ``server.json`` of a ``pai server`` in the current folder or above. With
    ``start=True`` (a script, VS Code, an nbclient run), when none is found, a ``pai server`` is started
    on the current folder (or ``$PAI_LAB_ROOT``) and stopped when this Python process exits; later
    calls reuse it, as ``ray.init()`` does.
    """
    from pai_lab.client import discovery
    from pai_lab.errors import ServerNotFound

    if url:
        client = PaiClient(url, token)
    else:
        try:
            info = discovery.discover()
        except ServerNotFound:
            if not start:
                from pathlib import Path

                raise ServerNotFound(discovery.HOW_TO_START_PYTHON.format(cwd=Path.cwd())) from None
            info = discovery.started_server() or discovery.start_server(timeout=timeout)
        client = PaiClient(http=Http(info))
    ws = client.workspace(workspace)
    ws.info()  # fail here, with the server's message, if the workspace is missing or refused
    return ws
