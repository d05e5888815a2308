"""Dask clusters from a Dask Gateway: the settings an operator gives (``TrainingManager.dask_gateway``,
or a resource group's in ``TrainingManager.resource_groups``), checked once, and the cluster they open.

The gateway (``dask-gateway-server``, on Kubernetes, YARN, HPC queues or local processes) starts a
scheduler and workers per cluster; pai_lab asks it for one cluster (a new one with the options given, or
one already running, by name), scales it to ``workers`` and places job ranks there as on any Dask cluster.
The ``dask-gateway`` client is an extra: ``pip install "pai_lab[gateway]"``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, ValidationError

from pai_lab.schema import Schema

MAX_WORKERS = 1000
GROUP_PREFIX = "dask-gateway:"  # how jobs name a gateway group's cluster (a scheduler address is tcp://...)
_URL = re.compile(r"^https?://[A-Za-z0-9.\-\[\]:]+(/[^\s]*)?$")
_PROXY = re.compile(r"^((tls|gateway)://)?[A-Za-z0-9.\-\[\]]*:?\d{1,5}$")
_CLUSTER = re.compile(r"^[A-Za-z0-9._\-]{1,128}$")


class GatewaySettings(Schema):
    """Where the gateway is, how pai_lab logs in, and the cluster it asks for (dask-gateway's own names)."""

    address: str = Field(max_length=512, description="the gateway's public address, http(s)://host:port[/prefix]")
    proxy_address: str = Field(
        "", max_length=512, description="the scheduler proxy (host:port or tls://host:port); empty: the address's"
    )
    public_address: str = Field("", max_length=512, description="the address users' dashboards link to")
    auth: Literal["", "basic", "kerberos", "jupyterhub"] = Field(
        "", description="how to log in; empty: dask's config (gateway.auth.type), else none"
    )
    auth_kwargs: dict[str, str] = Field(
        default_factory=dict,
        description="the login's arguments: basic {username, password}, jupyterhub {api_token}",
    )
    cluster_options: dict[str, Any] = Field(
        default_factory=dict, description="the gateway's cluster options (worker_cores, worker_memory, image...)"
    )
    workers: int = Field(2, ge=0, le=MAX_WORKERS, description="workers the cluster is scaled to")
    cluster_name: str = Field(
        "", max_length=128, description="join this running cluster instead of starting one (it is never shut down)"
    )
    shutdown_on_close: bool = Field(True, description="shut the started cluster down when the server stops")


def check(value: dict[str, Any], where: str) -> GatewaySettings:
    """The settings as given in ``where`` (a trait's name), or ValueError naming the key and the fix."""
    try:
        settings = GatewaySettings.model_validate(value)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(part) for part in error["loc"]) or "(the settings)"
        raise ValueError(f"{where}: {key}: {error['msg']}") from None
    if not _URL.match(settings.address):
        raise ValueError(
            f"{where}: address {settings.address!r}: give the gateway's public address, e.g. http://gateway.internal:8000"
        )
    if settings.proxy_address and not _PROXY.match(settings.proxy_address):
        raise ValueError(
            f"{where}: proxy_address {settings.proxy_address!r}: give host:port (or tls://host:port) of the "
            "gateway's scheduler proxy, or leave it out"
        )
    if settings.cluster_name and not _CLUSTER.match(settings.cluster_name):
        raise ValueError(f"{where}: cluster_name {settings.cluster_name!r}: a name `gateway.list_clusters()` shows")
    if settings.auth == "basic" and set(settings.auth_kwargs) - {"username", "password"}:
        raise ValueError(f"{where}: auth_kwargs: basic takes username and password")
    return settings


@dataclass
class GatewayCluster:
    """A cluster opened on a gateway: its name, the client pai_lab uses, and what closes it."""

    name: str
    client: Any
    cluster: Any
    started_here: bool

    def close(self, shutdown: bool) -> None:
        try:
            self.client.close()
        finally:
            if shutdown and self.started_here:
                self.cluster.shutdown()
            else:
                self.cluster.close()


def _auth(settings: GatewaySettings):
    if not settings.auth:
        return None  # dask's own config, as `dask_gateway.Gateway()` reads it
    from dask_gateway.auth import get_auth

    if not settings.auth_kwargs:
        return get_auth(settings.auth)
    from dask_gateway.auth import BasicAuth, JupyterHubAuth, KerberosAuth

    kinds = {"basic": BasicAuth, "kerberos": KerberosAuth, "jupyterhub": JupyterHubAuth}
    return kinds[settings.auth](**settings.auth_kwargs)


def open_cluster(settings: GatewaySettings) -> GatewayCluster:
    """Start (or join) the cluster, scale it to ``settings.workers``, and connect a client to it."""
    try:
        from dask_gateway import Gateway
    except ImportError:
        raise RuntimeError(
            "TrainingManager.dask_gateway needs the dask-gateway client: pip install 'pai_lab[gateway]'"
        ) from None
    gateway = Gateway(
        address=settings.address,
        proxy_address=settings.proxy_address or None,
        public_address=settings.public_address or None,
        auth=_auth(settings),
    )
    cluster: Any = None
    started = False
    try:
        if settings.cluster_name:
            cluster = gateway.connect(settings.cluster_name, shutdown_on_close=False)
        else:
            options = gateway.cluster_options()
            unknown = sorted(set(settings.cluster_options) - set(options))
            if unknown:
                raise ValueError(
                    f"cluster_options: the gateway has no option {', '.join(unknown)}; it offers {', '.join(options)}"
                )
            for key, value in settings.cluster_options.items():
                options[key] = value
            cluster = gateway.new_cluster(options, shutdown_on_close=settings.shutdown_on_close)
            started = True
        if started or settings.workers:
            cluster.scale(settings.workers)
        # no wait for the workers: jobs wait in Queuing until the cluster has some, as on any cluster
        client = cluster.get_client(set_as_default=False)
    except BaseException:
        if started and cluster is not None:
            cluster.shutdown()
        gateway.close()  # its loop and connections: a group whose settings fail is tried again every second
        raise
    return GatewayCluster(name=cluster.name, client=client, cluster=cluster, started_here=started)
