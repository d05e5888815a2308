"""REST routes for the dataset registry and the DLC code sources."""

from __future__ import annotations

import asyncio
import tempfile

from pydantic import BaseModel, Field

from pai_lab.datasets import code_sources as codes
from pai_lab.datasets import compare, items, versions
from pai_lab.datasets import service as svc
from pai_lab.datasets.manager import DatasetsManager
from pai_lab.datasets.schemas import (
    CheckReport,
    CodeSource,
    CodeSourceCreate,
    Dataset,
    DatasetCreate,
    DatasetDiff,
    DatasetUpdate,
    DatasetVersion,
    DiffQuery,
    ItemPage,
    ItemsQuery,
    Sample,
    ScanProgress,
    VersionCreate,
    VersionQuery,
)
from pai_lab.errors import BadInput, NotFound, PaiError
from pai_lab.schema import Int, whole_number
from pai_lab.security.paths import Containment
from pai_lab.server.routing import Router

router = Router("datasets")


def _manager(req) -> DatasetsManager:
    return req.platform.manager("datasets", DatasetsManager)


def _roots(req) -> Containment:
    return Containment.from_platform(req.platform)


class ListQuery(BaseModel):
    data_type: str | None = None


class ItemQuery(BaseModel):
    key: str | None = Field(None, description="the item's key")
    index: Int | None = Field(None, ge=0, description="or its position in the version")
    version: Int | None = None
    size: int = Field(128, ge=16, le=1024, description="thumbnail edge in pixels")


class CodeSourceQuery(BaseModel):
    display_name: str | None = None


def _scanning(req, workspace: str, name: str, work):
    """Run a scan with progress that `GET .../progress` reports while it runs."""
    scan = _manager(req).start(workspace, name)
    try:
        result = work(scan.report)
    except PaiError as exc:
        if exc.status < 500:  # refused (role, validation): the call leaves no record for others to read
            scan.refused()
        else:
            scan.finish(str(exc))
        raise
    except Exception as exc:
        scan.finish(str(exc))
        raise
    scan.finish()
    return result


@router.get(
    "/dataset-samples", name="dataset.samples", summary="Sample datasets shipped with pai_lab", response=list[Sample]
)
def samples(req):
    return svc.list_samples()


@router.get(
    "/workspaces/{workspace}/datasets",
    name="dataset.list",
    summary="Datasets of a workspace",
    query=ListQuery,
    response=list[Dataset],
)
def list_datasets(req, workspace, query: ListQuery):
    with req.transaction() as s:
        return svc.list_datasets(s, req.user, workspace, data_type=query.data_type)


@router.post(
    "/workspaces/{workspace}/datasets",
    name="dataset.create",
    summary="Register a dataset from a folder, a prefix, a manifest, items or a sample",
    body=DatasetCreate,
    response=Dataset,
    status=201,
)
def create_dataset(req, workspace, body: DatasetCreate):
    def work(report):
        with req.transaction() as s:
            return svc.register_dataset(
                s, req.user, workspace, body, roots=_roots(req), state_dir=req.platform.state_dir, progress=report
            )

    return _scanning(req, workspace, body.name, work)


@router.get("/workspaces/{workspace}/datasets/{name}", name="dataset.get", summary="One dataset", response=Dataset)
def get_dataset(req, workspace, name):
    with req.transaction() as s:
        return svc.get_dataset(s, req.user, workspace, name)


@router.patch(
    "/workspaces/{workspace}/datasets/{name}",
    name="dataset.update",
    summary="Change a dataset's description, tags, visibility or type",
    body=DatasetUpdate,
    response=Dataset,
)
def update_dataset(req, workspace, name, body: DatasetUpdate):
    with req.transaction() as s:
        return svc.update_dataset(s, req.user, workspace, name, **body.model_dump(exclude_none=True))


@router.delete(
    "/workspaces/{workspace}/datasets/{name}",
    name="dataset.delete",
    summary="Forget a dataset and its versions (the data itself is not touched)",
    status=204,
)
def delete_dataset(req, workspace, name):
    with req.transaction() as s:
        info = svc.delete_dataset(s, req.user, workspace, name)
    _manager(req).forget(info.id)


@router.get(
    "/workspaces/{workspace}/datasets/{name}/versions",
    name="dataset.versions",
    summary="A dataset's immutable versions",
    response=list[DatasetVersion],
)
def list_versions(req, workspace, name):
    with req.transaction() as s:
        return versions.list_versions(s, req.user, workspace, name)


@router.post(
    "/workspaces/{workspace}/datasets/{name}/versions",
    name="dataset.version.create",
    summary="Make a new version: re-scan the source, or register the given items",
    body=VersionCreate,
    response=DatasetVersion,
    status=201,
)
def create_version(req, workspace, name, body: VersionCreate):
    def work(report):
        with req.transaction() as s:
            return versions.new_version(
                s,
                req.user,
                workspace,
                name,
                description=body.description,
                content_hash=body.hash,
                items=body.items,
                roots=_roots(req),
                progress=report,
            )

    return _scanning(req, workspace, name, work)


@router.get(
    "/workspaces/{workspace}/datasets/{name}/versions/{version}",
    name="dataset.version.get",
    summary="One version",
    response=DatasetVersion,
)
def get_version(req, workspace, name, version):
    with req.transaction() as s:
        return versions.get_version(s, req.user, workspace, name, _int(version, "version"))


@router.get(
    "/workspaces/{workspace}/datasets/{name}/progress",
    name="dataset.progress",
    summary="Progress of the running (or last) scan of a dataset",
    response=ScanProgress,
)
def progress(req, workspace, name):
    with req.transaction() as s:
        from pai_lab.workspaces import authorize

        authorize(s, req.user, workspace, "dataset.read")
    return _manager(req).progress(workspace, name)


@router.get(
    "/workspaces/{workspace}/datasets/{name}/diff",
    name="dataset.diff",
    summary="Items added, removed and changed between two versions (?from=1&to=2)",
    query=DiffQuery,
    response=DatasetDiff,
)
def diff(req, workspace, name, query: DiffQuery):
    with req.transaction() as s:
        return compare.diff_versions(
            s, req.user, workspace, name, query.from_version, query.to_version, limit=query.limit
        )


@router.get(
    "/workspaces/{workspace}/datasets/{name}/check",
    name="dataset.check",
    summary="Do a version's items still exist unchanged? Reports drift",
    query=VersionQuery,
    response=CheckReport,
)
def check(req, workspace, name, query: VersionQuery):
    with req.transaction() as s:
        return compare.check_version(s, req.user, workspace, name, query.version, roots=_roots(req))


@router.get(
    "/workspaces/{workspace}/datasets/{name}/items",
    name="dataset.items",
    summary="A page of a version's items",
    query=ItemsQuery,
    response=ItemPage,
)
def list_items(req, workspace, name, query: ItemsQuery):
    with req.transaction() as s:
        return items.item_page(
            s, req.user, workspace, name, version=query.version, offset=query.offset, limit=query.limit
        )


@router.get(
    "/workspaces/{workspace}/datasets/{name}/manifest",
    name="dataset.manifest",
    summary="A version as an iTAG .manifest file (JSON Lines)",
    query=VersionQuery,
    raw=True,
)
async def manifest(req, workspace, name, query: VersionQuery):
    def spool():
        out = tempfile.SpooledTemporaryFile(max_size=8 << 20)  # noqa: SIM115 - the response streams it, then closes it
        with req.transaction() as s:
            for line in items.iter_manifest_text(s, req.user, workspace, name, query.version):
                out.write(line.encode("utf-8", "surrogateescape"))
        out.seek(0)
        return out

    loop = asyncio.get_running_loop()
    spooled = await loop.run_in_executor(None, spool)
    handler = req.handler
    handler.set_header("Content-Type", "application/x-ndjson; charset=utf-8")
    handler.set_header("Content-Disposition", f'attachment; filename="{name}.manifest"')
    with spooled:
        while True:
            block = spooled.read(1 << 16)
            if not block:
                break
            handler.write(block)
            await handler.flush()
    await handler.finish()


def _item(req, workspace, name, query: ItemQuery):
    with req.transaction() as s:
        return items.readable_item(
            s, req.user, workspace, name, _roots(req), key=query.key, index=query.index, version=query.version
        )


@router.get(
    "/workspaces/{workspace}/datasets/{name}/thumbnail",
    name="dataset.thumbnail",
    summary="A PNG thumbnail of an image item (made once, then cached)",
    query=ItemQuery,
    raw=True,
)
async def thumbnail(req, workspace, name, query: ItemQuery):
    def make():
        dataset_id, item, options = _item(req, workspace, name, query)
        try:
            return _manager(req).thumbnail(
                dataset_id, item.key, item.stamp, item.source, options, (query.size, query.size)
            )
        except FileNotFoundError:
            raise NotFound(f"item {item.key!r} no longer exists at {item.source}", "key") from None
        except OSError as exc:  # Pillow's "cannot identify image file"
            raise BadInput(f"item {item.key!r} is not an image Pillow can read ({exc})", "key") from None

    data = await asyncio.get_running_loop().run_in_executor(None, make)
    req.handler.set_header("Content-Type", "image/png")
    req.handler.set_header("Cache-Control", "private, max-age=3600")
    await req.handler.finish(data)


@router.get(
    "/workspaces/{workspace}/datasets/{name}/content",
    name="dataset.content",
    summary="The bytes of one item, for clients that cannot reach its storage",
    query=ItemQuery,
    raw=True,
)
async def content(req, workspace, name, query: ItemQuery):
    import fsspec

    def open_item():
        _dataset_id, item, options = _item(req, workspace, name, query)
        try:
            return fsspec.open(item.source, "rb", **options).open()
        except FileNotFoundError:
            raise NotFound(f"item {item.key!r} no longer exists at {item.source}", "key") from None

    loop = asyncio.get_running_loop()
    fh = await loop.run_in_executor(None, open_item)
    req.handler.set_header("Content-Type", "application/octet-stream")
    try:
        while True:
            block = await loop.run_in_executor(None, fh.read, 1 << 20)
            if not block:
                break
            req.handler.write(block)
            await req.handler.flush()
    finally:
        fh.close()
    await req.handler.finish()


def _int(value: str, what: str) -> int:
    number = whole_number(value)
    if number is None:
        raise BadInput(f"{what} must be a whole number (1, 2, ...), got {value[:40]!r}", what)
    return number


# ---------------------------------------------------------------- DLC code sources


@router.get(
    "/workspaces/{workspace}/code_sources",
    name="code_source.list",
    summary="Code sources (DLC)",
    query=CodeSourceQuery,
    response=list[CodeSource],
)
def list_code_sources(req, workspace, query: CodeSourceQuery):
    with req.transaction() as s:
        return codes.list_code_sources(s, req.user, workspace, query.display_name)


@router.post(
    "/workspaces/{workspace}/code_sources",
    name="code_source.create",
    summary="Register a git repository or local folder as a code source",
    body=CodeSourceCreate,
    response=CodeSource,
    status=201,
)
def create_code_source(req, workspace, body: CodeSourceCreate):
    with req.transaction() as s:
        return codes.create_code_source(s, req.user, workspace, body, roots=_roots(req))


@router.get(
    "/workspaces/{workspace}/code_sources/{code_id}",
    name="code_source.get",
    summary="One code source",
    response=CodeSource,
)
def get_code_source(req, workspace, code_id):
    with req.transaction() as s:
        return codes.get_code_source(s, req.user, workspace, code_id)


@router.delete(
    "/workspaces/{workspace}/code_sources/{code_id}",
    name="code_source.delete",
    summary="Delete a code source",
    status=204,
)
def delete_code_source(req, workspace, code_id):
    with req.transaction() as s:
        codes.delete_code_source(s, req.user, workspace, code_id)
