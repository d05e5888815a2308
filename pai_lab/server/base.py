"""The one tornado handler class behind every route: auth, errors, JSON, operation log."""

from __future__ import annotations

import contextlib
import json
import logging
import traceback
from dataclasses import dataclass
from typing import Any

from jupyter_server.auth.decorator import HTTP_METHOD_TO_AUTH_ACTION
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import ensure_async
from tornado import web

from pai_lab.errors import Forbidden, PaiError
from pai_lab.server.routing import Operation, call, encode

log = logging.getLogger("pai_lab")

# the code of a 503 that says the work the call started goes on and the caller should ask again (a task's
# image embedding being built): not a failed operation, so not written to the operation log
STILL_WORKING = "computing"


@dataclass
class Request:
    """What an operation function gets: the platform, who is calling, and the raw handler."""

    platform: Any
    user: str
    handler: RouteHandler
    log_entry: tuple | None = None  # (workspace, action, target) when this call belongs in the operation log
    logged: bool = False

    @contextlib.contextmanager
    def transaction(self):
        """A store transaction; the call's operation-log entry commits with the first one that succeeds,
        so a write and its record land together (and cost one commit, not two)."""
        with self.platform.store.transaction() as session:
            yield session
            if self.log_entry and not self.logged:
                from pai_lab.workspaces import log_operation

                workspace, action, target = self.log_entry
                log_operation(session, workspace, self.user, action, target, "ok")
                self.logged = True


class _JobTokenAware:
    """The server's identity provider, which also knows the live job tokens: a rank's token
    authenticates as the job's submitter, on pai_lab's routes only (Jupyter's own routes never see it)."""

    def __init__(self, inner, platform):
        self._inner = inner
        self._platform = platform

    def __getattr__(self, name: str):
        return getattr(self._inner, name)

    async def get_user(self, handler):
        from jupyter_server.auth.identity import User

        from pai_lab.training.isolation import grant_for

        grant = grant_for(self._platform, self._inner.get_token(handler) or "")
        if grant is not None:
            handler._token_authenticated = True  # a token, not a cookie: no _xsrf to check
            handler.job_grant = grant
            return User(username=grant.user, name=grant.user, display_name=grant.user, initials=grant.user[:1].upper())
        return await ensure_async(self._inner.get_user(handler))


class RouteHandler(APIHandler):
    # jupyter_server's Authorizer sees pai_lab's calls as this resource ("read" for GET, "write" for the rest),
    # so a JupyterHub read-only policy restricts them as it restricts the contents API.
    auth_resource = "pai_lab"

    job_grant = None  # set when a job's rank is calling, with its job token

    def initialize(self, platform, operations: dict[str, Operation]):
        self.platform = platform
        self.operations = operations

    @property
    def identity_provider(self):
        return _JobTokenAware(super().identity_provider, self.platform)

    def get_login_url(self) -> str:
        # An API route has no login page to redirect to: say plainly that a token is needed.
        raise web.HTTPError(401, reason="authentication required")

    def check_xsrf_cookie(self) -> None:
        # A call with no credential at all is unauthenticated (401), not a cross-site forgery (403 "_xsrf").
        if hasattr(self, "_jupyter_current_user") and not self.current_user:
            raise web.HTTPError(401, reason="authentication required")
        super().check_xsrf_cookie()

    async def prepare(self) -> None:
        limit = int(self.platform.settings.get("max_request_bytes") or 0)
        length = self.request.headers.get("Content-Length", "")
        size = int(length) if length.isdigit() else len(self.request.body or b"")
        if limit and size > limit:
            self.set_status(413)
            self.set_header("Content-Type", "application/json")
            self.finish(
                json.dumps(
                    {
                        "error": {
                            "code": "too_large",
                            "field": "body",
                            "message": f"the request body is {size} bytes; this server takes at most {limit} "
                            "(an operator sets PaiLabApp.max_request_bytes)",
                        }
                    }
                )
            )
            return
        await super().prepare()

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, PaiError):
            body = exc.to_json()
        else:
            reason = getattr(exc, "reason", None) or getattr(exc, "log_message", None) or self._reason
            code = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}.get(
                status_code, "internal" if status_code >= 500 else "bad_request"
            )
            if status_code == 401:
                reason = "authentication required: send `Authorization: token <T>` (see `pai server`)"
            body = {"error": {"code": code, "message": str(reason), "field": None}}
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    async def _dispatch(self, method: str, **path_args: str) -> None:
        op = self.operations.get(method)
        if op is None:
            raise web.HTTPError(405)
        action = HTTP_METHOD_TO_AUTH_ACTION[method]
        if self.job_grant is not None:
            refusal = self._outside_grant(path_args)
            if refusal:
                self.set_status(refusal.status)
                self.set_header("Content-Type", "application/json")
                self.finish(json.dumps(refusal.to_json()))
                return
        elif not await ensure_async(self.authorizer.is_authorized(self, self.current_user, action, self.auth_resource)):
            denied = Forbidden(
                f"this Jupyter server's authorizer does not let you {action} {self.auth_resource}; "
                "ask its administrator",
                None,
            )
            self.set_status(denied.status)
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps(denied.to_json()))
            return
        user = (
            self.job_grant.user
            if self.job_grant is not None
            else self.platform.actor_for(self.current_user, self.identity_provider._inner)
        )
        request = Request(self.platform, user, self)
        if op.log and op.mutating and path_args.get("workspace"):
            request.log_entry = (path_args["workspace"], op.name, self.request.path.split("/api/v1", 1)[-1])
        try:
            result = await call(op, request, path_args, self.request.body, self.request.query_arguments)
        except PaiError as exc:
            if exc.code != STILL_WORKING:  # "computing ..., retry": nothing failed, the retried call is logged
                self._log_operation(op, user, path_args, f"error:{exc.status}", exc.message)
            self.set_status(exc.status)
            if exc.retry_after is not None:
                self.set_header("Retry-After", str(max(1, round(exc.retry_after))))
            self.finish(json.dumps(exc.to_json()))
            return
        except Exception as exc:  # noqa: BLE001 - a bug: answer 500 with the message, keep the trace in the log
            log.error("pai_lab %s %s failed\n%s", method, self.request.path, traceback.format_exc())
            self._log_operation(op, user, path_args, "error:500", str(exc))
            self.set_status(500)
            self.finish(json.dumps({"error": {"code": "internal", "message": str(exc), "field": None}}))
            return
        if not request.logged:
            self._log_operation(op, user, path_args, "ok", "")
        if op.raw:
            return
        self.set_status(op.status)
        payload = encode(op, result)
        if payload is None and op.status == 204:
            self.finish()
        else:
            self.set_header("Content-Type", "application/json")
            self.finish(payload if payload is not None else b"null")

    def _outside_grant(self, path_args: dict) -> Forbidden | None:
        """A job token reaches its own workspace only."""
        workspace = path_args.get("workspace")
        if workspace is None:
            return None
        from pai_lab.workspaces.tables import WorkspaceRow

        with self.platform.store.transaction() as session:
            row = session.get(WorkspaceRow, self.job_grant.workspace_id)
        if row is not None and workspace in (row.id, row.name):
            return None
        return Forbidden(f"the job token of {self.job_grant.job_id} is good for its own workspace only", "workspace")

    def _log_operation(self, op: Operation, user: str, path_args: dict, result: str, detail: str) -> None:
        workspace = path_args.get("workspace")
        if not op.log or not op.mutating or not workspace:
            return
        target = self.request.path.split("/api/v1", 1)[-1]
        try:
            from pai_lab.workspaces import log_operation

            with self.platform.store.transaction() as session:
                log_operation(session, workspace, user, op.name, target, result, detail)
        except Exception:  # the log must never turn a finished call into a failure
            log.warning("could not write the operation log", exc_info=True)

    @web.authenticated
    async def get(self, **kw):
        await self._dispatch("GET", **kw)

    @web.authenticated
    async def post(self, **kw):
        await self._dispatch("POST", **kw)

    @web.authenticated
    async def put(self, **kw):
        await self._dispatch("PUT", **kw)

    @web.authenticated
    async def patch(self, **kw):
        await self._dispatch("PATCH", **kw)

    @web.authenticated
    async def delete(self, **kw):
        await self._dispatch("DELETE", **kw)


class UnavailableHandler(APIHandler):
    """pai_lab's routes while its control plane could not start inside JupyterLab: a 503 with the reason,
    not a 404 that looks like a wrong URL."""

    def initialize(self, reason: str):
        self.reason = reason

    def get_login_url(self) -> str:
        raise web.HTTPError(401, reason="authentication required")

    @web.authenticated
    async def _unavailable(self, *args) -> None:
        self.set_status(503)
        self.set_header("Content-Type", "application/json")
        self.finish(
            json.dumps(
                {
                    "error": {
                        "code": "unavailable",
                        "field": None,
                        "message": (
                            f"pai_lab could not start: {self.reason}; see the Jupyter server's log, fix it and restart"
                        ),
                    }
                }
            )
        )

    get = post = put = patch = delete = _unavailable
