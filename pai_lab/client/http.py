"""The HTTP side of the client: one requests.Session, JSON in and out, errors as PaiError."""

from __future__ import annotations

from typing import Any

import requests

from pai_lab.client.discovery import ServerInfo, discover
from pai_lab.errors import PaiError, ServerNotFound, from_response


class Http:
    def __init__(self, info: ServerInfo | None = None, timeout: float = 60):
        self.info = info or discover()
        self.timeout = timeout
        self.session = requests.Session()
        if self.info.token:
            self.session.headers["Authorization"] = f"token {self.info.token}"

    def url(self, path: str) -> str:
        return self.info.api + path

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict | None = None,
        stream: bool = False,
        timeout: float | None = None,
    ) -> Any:
        try:
            resp = self.session.request(
                method, self.url(path), json=json, params=params, stream=stream, timeout=timeout or self.timeout
            )
        except requests.ConnectionError:
            raise ServerNotFound(
                f"cannot reach the pai_lab server at {self.info.url} (found via "
                f"{self.info.source}); is it running? Start one with `pai server`"
            ) from None
        if resp.status_code >= 400:
            try:
                body = resp.json()
            except ValueError:
                body = {"error": {"message": resp.text.strip()[:500] or resp.reason}}
            if resp.status_code == 404 and "error" not in (body or {}):
                body = {"error": {"message": f"{path} not found: is the pai_lab server extension enabled?"}}
            raise from_response(resp.status_code, body, resp.headers.get("Retry-After"))
        if stream:
            return resp
        if resp.status_code == 204 or not resp.content:
            return None
        try:
            return resp.json()
        except ValueError as exc:
            raise PaiError(f"the server answered {path} with non-JSON: {resp.text[:200]}") from exc

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, json=None, **kw):
        return self.request("POST", path, json=json, **kw)

    def patch(self, path, json=None, **kw):
        return self.request("PATCH", path, json=json, **kw)

    def put(self, path, json=None, **kw):
        return self.request("PUT", path, json=json, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)
