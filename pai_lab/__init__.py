"""pai_lab: workspaces, datasets, labeling, distributed TensorFlow on Dask and model serving, in JupyterLab."""

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "__version__":  # read from the package's metadata on first use: `pai` and ranks start sooner
        from pai_lab._version import __version__

        return __version__
    raise AttributeError(f"module 'pai_lab' has no attribute {name!r}")


def _jupyter_server_extension_points():
    from pai_lab.app import PaiLabApp

    return [{"module": "pai_lab.app", "app": PaiLabApp}]


def _jupyter_labextension_paths():
    return [{"src": "labextension", "dest": "pai-lab"}]


def load_ipython_extension(ipython):
    from pai_lab.magics import load_ipython_extension as load

    load(ipython)


def connect(*args, **kwargs):
    """Connect to the pai_lab control plane and return a workspace client (see :func:`pai_lab.client.connect`)."""
    from pai_lab.client import connect as _connect

    return _connect(*args, **kwargs)


__all__ = ["__version__", "connect"]
