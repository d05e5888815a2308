"""The OpenAPI document served by pai_lab is valid OpenAPI 3.1, checked by openapi-spec-validator."""

from openapi_spec_validator import OpenAPIV31SpecValidator


async def test_the_served_openapi_document_is_valid(api):
    status, doc = await api("GET", "/openapi.json")
    assert status == 200
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in OpenAPIV31SpecValidator(doc).iter_errors()]
    assert errors == []


async def test_every_query_parameter_has_a_schema_with_its_bounds(api):
    status, doc = await api("GET", "/openapi.json")
    params = [p for ops in doc["paths"].values() for op in ops.values() for p in op["parameters"]]
    query = [p for p in params if p["in"] == "query"]
    assert len(query) >= 40
    assert all("schema" in p for p in params)
    # a bound declared on a query field is in the document (a job's long-poll `wait`: 0 < wait <= 60)
    wait = next(p for p in query if p["name"] == "wait")
    assert wait["schema"].get("maximum") == 60


async def test_request_bounds_are_in_the_document(api):
    status, doc = await api("GET", "/openapi.json")
    def body(path):
        schema = doc["paths"]["/pai-lab/api/v1" + path]["post"]["requestBody"]["content"]["application/json"]
        return schema["schema"]

    assert body("/workspaces/{workspace}/jobs")["properties"]["name"]["maxLength"] == 128
    assert body("/workspaces/{workspace}/labeling/tasks")["properties"]["labels"]["maxItems"] == 1000
