"""A small route table: each operation declares its path, schemas and summary once.

The same declarations build the tornado handlers, the OpenAPI document and the route walk
in the tests, so a route cannot exist without being documented and authenticated.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from pai_lab.errors import BadInput

API_PREFIX = "/pai-lab/api/v1"
_PARAM = re.compile(r"\{(\w+)\}")


@dataclass
class Operation:
    method: str
    path: str  # relative to API_PREFIX, with {params}
    func: Callable[..., Any]
    name: str  # also the action written to the operation log
    summary: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: Any = None
    status: int = 200
    raw: bool = False  # the function writes the response itself (streams, files)
    log: bool = True  # mutating calls go to the operation log; data-plane calls (predictions) do not
    tags: list[str] = field(default_factory=list)

    @property
    def params(self) -> list[str]:
        return _PARAM.findall(self.path)

    @property
    def mutating(self) -> bool:
        return self.method in ("POST", "PUT", "PATCH", "DELETE")


class Router:
    def __init__(self, tag: str):
        self.tag = tag
        self.operations: list[Operation] = []

    def route(
        self,
        method: str,
        path: str,
        *,
        name: str,
        summary: str,
        body=None,
        query=None,
        response=None,
        status: int = 200,
        raw: bool = False,
        log: bool = True,
    ):
        def register(func):
            self.operations.append(
                Operation(
                    method.upper(), path, func, name, summary, body, query, response, status, raw, log, [self.tag]
                )
            )
            return func

        return register

    def get(self, path, **kw):
        return self.route("GET", path, **kw)

    def post(self, path, **kw):
        return self.route("POST", path, **kw)

    def patch(self, path, **kw):
        return self.route("PATCH", path, **kw)

    def put(self, path, **kw):
        return self.route("PUT", path, **kw)

    def delete(self, path, **kw):
        return self.route("DELETE", path, **kw)


def tornado_pattern(path: str) -> str:
    return API_PREFIX + _PARAM.sub(lambda m: rf"(?P<{m.group(1)}>[^/]+)", path) + "/?"


# parts of an error's location that name a member of a union (`constrained-str`, `LabelSpec`), not a field
_UNION_TAG = re.compile(r"[-\[]|^[A-Z]|^(str|int|float|bool|dict|list|none)$")


def _validation_error(exc: ValidationError, prefix: str = "") -> BadInput:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err.get("loc", ()) if p != "__root__" and not _UNION_TAG.search(str(p)))
    fieldname = f"{prefix}{loc}" if loc else (prefix.rstrip(".") or None)
    msg = err.get("msg", "invalid value")
    if err.get("type") == "extra_forbidden":
        msg = "unknown field; remove it or check its spelling"
    elif err.get("type") == "missing":
        msg = "required field is missing"
    return BadInput(f"{fieldname}: {msg}" if fieldname else msg, fieldname)


def parse_body(model: type[BaseModel], raw: bytes) -> BaseModel:
    try:
        data = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadInput(f"malformed JSON body: {exc}; send a JSON object", "body") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _validation_error(exc) from None


def parse_query(model: type[BaseModel], args: dict[str, list[bytes]]) -> BaseModel:
    values: dict[str, Any] = {}
    for key, vals in args.items():
        if key.isdigit() and not any(vals):
            continue  # a bare cache-buster (`?1700000000`) that browsers' request helpers append
        decoded = [v.decode() for v in vals]
        values[key] = decoded if len(decoded) > 1 else decoded[0]
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise _validation_error(exc) from None


@functools.cache
def _adapter(tp: Any) -> TypeAdapter:
    return TypeAdapter(tp)  # building one costs more than the dump itself: once per response type


def encode(op: Operation, result: Any) -> bytes | None:
    """The JSON body of an operation's result (None: no body)."""
    if result is None:
        return None
    if op.response is not None:
        return _adapter(op.response).dump_json(result)
    if isinstance(result, BaseModel):
        return result.model_dump_json().encode()
    return json.dumps(result).encode()


async def call(op: Operation, request, path_args: dict[str, str], body: bytes, query_args: dict) -> Any:
    kwargs: dict[str, Any] = dict(path_args)
    if op.body is not None:
        kwargs["body"] = parse_body(op.body, body)
    if op.query is not None:
        kwargs["query"] = parse_query(op.query, query_args)
    try:
        if inspect.iscoroutinefunction(op.func):
            return await op.func(request, **kwargs)
        # Domain calls are synchronous (SQLAlchemy); keep them off the server's event loop.
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, lambda: op.func(request, **kwargs))
    except ValidationError as exc:
        # a shape the domain builds from the caller's input (a label, a spec) refused it: the caller's
        # error, so a 400 naming the field, never a 500
        raise _validation_error(exc) from None


def openapi_document(routers: list[Router], version: str) -> dict:
    paths: dict[str, dict] = {}
    components: dict[str, Any] = {}

    def schema_of(tp) -> dict:
        schema = TypeAdapter(tp).json_schema(ref_template="#/components/schemas/{model}")
        for name, shape in schema.pop("$defs", {}).items():
            if components.setdefault(name, shape) != shape:  # one name, one shape: else a route is misdescribed
                raise ValueError(f"two different schemas are named {name!r} in the API; rename one of the models")
        return schema

    for router in routers:
        for op in router.operations:
            entry: dict[str, Any] = {
                "operationId": op.name,
                "summary": op.summary,
                "tags": op.tags,
                "security": [{"token": []}],
                "parameters": [
                    {"name": p, "in": "path", "required": True, "schema": {"type": "string"}} for p in op.params
                ],
                "responses": {
                    str(op.status): {"description": "OK"},
                    "400": {"$ref": "#/components/responses/Error"},
                    "401": {"$ref": "#/components/responses/Error"},
                    "403": {"$ref": "#/components/responses/Error"},
                    "404": {"$ref": "#/components/responses/Error"},
                },
            }
            if op.query is not None:
                # each query parameter carries its field's own schema (type, bounds), as OpenAPI requires
                props = schema_of(op.query).get("properties", {})
                for name, fld in op.query.model_fields.items():
                    schema = {k: v for k, v in props.get(name, {}).items() if k not in ("title", "description")}
                    entry["parameters"].append(
                        {
                            "name": name,
                            "in": "query",
                            "required": fld.is_required(),
                            "description": fld.description or "",
                            "schema": schema or {"type": "string"},
                        }
                    )
            if op.body is not None:
                entry["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": schema_of(op.body)}},
                }
            if op.response is not None:
                entry["responses"][str(op.status)]["content"] = {"application/json": {"schema": schema_of(op.response)}}
            paths.setdefault(API_PREFIX + op.path, {})[op.method.lower()] = entry
    components["Error"] = {
        "type": "object",
        "properties": {
            "error": {
                "type": "object",
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "field": {"type": ["string", "null"]},
                },
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "pai_lab", "version": version},
        "paths": paths,
        "components": {
            "schemas": components,
            "responses": {
                "Error": {
                    "description": "Error",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                }
            },
            "securitySchemes": {
                "token": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "`token <T>`, as Jupyter",
                }
            },
        },
    }
