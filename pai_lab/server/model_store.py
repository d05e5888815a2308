"""REST route of the model store: the body of a PUT is the file `eascmd upload` sends."""

from __future__ import annotations

from pai_lab.schema import Schema, Text
from pai_lab.server.routing import Router
from pai_lab.serving import model_store

router = Router("serving")


class ModelStoreUploadQuery(Schema):
    path: Text


class ModelStoreObject(Schema):
    model_path: str
    size: int
    path: str


@router.put(
    "/workspaces/{workspace}/model-store",
    name="model_store.upload",
    summary="Upload a model or processor package (eascmd upload); answers the model_path to use",
    query=ModelStoreUploadQuery,
    response=ModelStoreObject,
    status=201,
)
def upload(req, workspace, query: ModelStoreUploadQuery):
    with req.transaction() as s:
        return model_store.upload(
            s, req.user, workspace, req.platform.root_dir, query.path, req.handler.request.body or b""
        )
