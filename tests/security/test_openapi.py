"""The OpenAPI document served by pai_lab is valid OpenAPI 3.1 (checked by openapi-spec-validator) and
documents exactly the routes the running server's tornado application serves."""

import re

from jupyter_server.utils import url_path_join
from openapi_spec_validator import OpenAPIV31SpecValidator
from tornado.routing import PathMatches
from tornado.web import RequestHandler

API = "/pai-lab/api/v1"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def _path_rules(router):
    """The application's path rules in the order tornado tries them (nested routers walked in place)."""
    for rule in router.rules:
        if hasattr(rule.target, "rules"):
            yield from _path_rules(rule.target)
        elif isinstance(rule.matcher, PathMatches):
            yield rule


def _methods(rule) -> set[str]:
    """The methods a served rule answers: the operations its route handler was given (any other method is
    a 405), or the methods its handler class defines."""
    operations = (rule.target_kwargs or {}).get("operations")
    if operations is not None:
        return set(operations)
    return {m for m in METHODS if getattr(rule.target, m.lower()) is not getattr(RequestHandler, m.lower())}


def _sample(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: f"sample-{m.group(1)}", path)


async def test_the_served_openapi_document_is_valid(api):
    status, doc = await api("GET", "/openapi.json")
    assert status == 200
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in OpenAPIV31SpecValidator(doc).iter_errors()]
    assert errors == []


async def test_every_query_parameter_has_a_schema_with_its_bounds(api):
    _status, doc = await api("GET", "/openapi.json")
    params = [p for ops in doc["paths"].values() for op in ops.values() for p in op["parameters"]]
    query = [p for p in params if p["in"] == "query"]
    assert len(query) >= 40
    assert all("schema" in p for p in params)
    # a bound declared on a query field is in the document (a job's long-poll `wait`: 0 < wait <= 60)
    wait = next(p for p in query if p["name"] == "wait")
    assert wait["schema"].get("maximum") == 60


async def test_request_bounds_are_in_the_document(api):
    _status, doc = await api("GET", "/openapi.json")

    def body(path):
        schema = doc["paths"]["/pai-lab/api/v1" + path]["post"]["requestBody"]["content"]["application/json"]
        return schema["schema"]

    assert body("/workspaces/{workspace}/jobs")["properties"]["name"]["maxLength"] == 128
    assert body("/workspaces/{workspace}/labeling/tasks")["properties"]["labels"]["maxItems"] == 1000


async def test_openapi_documents_every_route(api, jp_serverapp, jp_base_url):
    status, doc = await api("GET", "/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.")
    rules = list(_path_rules(jp_serverapp.web_app.default_router))
    prefix = url_path_join(jp_base_url, API)
    served = {(i, m) for i, r in enumerate(rules) if r.matcher.regex.pattern.startswith(prefix) for m in _methods(r)}
    assert len(served) >= 40

    # each documented operation reaches a pai_lab handler that answers its method, and nothing else does
    reached = set()
    for path, ops in doc["paths"].items():
        url = url_path_join(jp_base_url, _sample(path))
        first = next((i for i, r in enumerate(rules) if r.matcher.regex.match(url)), None)
        for method in ops:
            assert (first, method.upper()) in served, f"{method.upper()} {path} is documented, not served"
            reached.add((first, method.upper()))
    undocumented = sorted(f"{m} {rules[i].matcher.regex.pattern}" for i, m in served - reached)
    assert undocumented == []

    # the same, asked of the running server: a documented route asks for credentials; an undocumented one is a 404
    for path, ops in doc["paths"].items():
        for method in ops:
            status, _ = await api(method.upper(), _sample(path).removeprefix(API), user=None)
            assert status in (401, 403), (method, path, status)
    status, _body = await api("GET", "/no-such-route")
    assert status == 404

    create = doc["paths"][API + "/workspaces"]["post"]
    schema = create["requestBody"]["content"]["application/json"]["schema"]
    assert "name" in str(schema)
