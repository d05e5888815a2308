"""REST routes about the server itself: who am I, the role matrix, the OpenAPI document."""

from __future__ import annotations

from pai_lab._version import __version__
from pai_lab.server.routing import Router
from pai_lab.workspaces import permissions
from pai_lab.workspaces.schemas import Me, RoleMatrix

router = Router("system")


@router.get("/me", name="me", summary="The calling user, as pai_lab sees them", response=Me)
def me(req):
    return Me(username=req.user, server_owner=req.user == req.platform.owner, version=__version__)


@router.get("/roles", name="roles", summary="The role x action permission matrix", response=RoleMatrix)
def roles(req):
    return RoleMatrix.model_validate(permissions.matrix_document())


@router.get("/openapi.json", name="openapi", summary="This API, as OpenAPI 3.1")
def openapi(req):
    from pai_lab.server import ROUTERS, openapi_document

    return openapi_document(ROUTERS, __version__)
