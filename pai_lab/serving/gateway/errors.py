"""What the gateway's runtime refuses a request with.

The runtime (instances, services, routes) knows no HTTP: it raises these, and the protocol
handlers (:mod:`pai_lab.serving.gateway.handlers`) give each its status code and the body of
their protocol. A request that does not fit the model is :class:`pai_lab.errors.BadInput`."""

from __future__ import annotations


class ServingError(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class NotServed(ServingError):
    """Nothing is served under the name or version asked for."""


class NotAllowed(ServingError):
    """The service exists but has no such operation (a Python processor has no signature)."""


class Refused(ServingError):
    """The caller did not prove it holds the service's token."""


class QueueFull(ServingError):
    """The instance's queue holds rpc.max_queue_size requests: the caller retries later."""


class TimedOut(ServingError):
    """No answer within rpc.keepalive; the request gave up its place."""


class NotReady(ServingError):
    """No instance can take the request now (loading, restarting, stopped): the caller retries."""


class LoadFailed(NotReady):
    """The instance could not load its processor; ``fatal`` when restarting cannot help."""

    def __init__(self, message: str, fatal: bool):
        super().__init__(f"loading failed: {message}")
        self.fatal = fatal


class InstanceError(ServingError):
    """The instance's own answer to a request it could not serve: a processor's refusal, with the
    status it chose, or its failure (500)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
