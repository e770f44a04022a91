"""Admin API of knowledge bases under `/v1/admin/knowledge`: bases (create, list, read, patch, delete), datasources
(upload a file as multipart/form-data or text as JSON; list, read, delete), chunks (list, delete) and search.
Gateway-key protected; errors in the gateway's shape. An upload over `knowledge.max_upload_bytes` is a 413, an
empty one a 400, an unsupported type a 415, all before anything is stored; the same bytes uploaded twice answer
the first datasource (200 instead of 202)."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

import orjson
from fastapi import FastAPI, Path, Query, Request, Response
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from portico.core.errors import (
    FieldError,
    NotFound,
    PayloadTooLarge,
    RequestError,
    UnsupportedMediaType,
    ValidationFailed,
)
from portico.http.admin_deps import Conflict, admin_router, error_responses, validation_error
from portico.http.auth import Authenticator
from portico.knowledge.chunking import check_settings
from portico.knowledge.filters import parse_filter
from portico.knowledge.service import KnowledgeService
from portico.storage.knowledge import StoredBase, knowledge_base_not_found
from portico.wire.knowledge_admin import (
    KNOWLEDGE_KEY,
    KnowledgeCreate,
    KnowledgeSettings,
    SearchBody,
    TextDatasource,
    base_public,
    retrieval_public,
)

Key = Annotated[str, Path(pattern=KNOWLEDGE_KEY, description="The knowledge base's key.")]
_MULTIPART_SLACK = 64 * 1024  # boundaries, headers and a metadata field around the file


def mount_knowledge_admin(app: FastAPI, service: KnowledgeService, auth: Authenticator, max_upload_bytes: int) -> None:
    router = admin_router(auth, "/v1/admin/knowledge", "knowledge")

    @router.post("", status_code=201, responses=error_responses(409))
    async def create_base(body: KnowledgeCreate) -> dict[str, Any]:
        """A new knowledge base; 409 if the key exists."""
        base = body.base()
        check_settings(size=base.chunk_size, overlap=base.chunk_overlap, splitter=base.splitter)
        return _public(await service.create_base(base))

    @router.get("")
    async def list_bases() -> dict[str, Any]:
        await service.bases.sync.catch_up()
        return {"data": [_public(stored) for stored in service.bases.all()]}

    @router.get("/{key}", responses=error_responses(404))
    async def get_base(key: Key) -> dict[str, Any]:
        return _public(await service.require(key))

    @router.patch("/{key}", responses=error_responses(404, 409))
    async def patch_base(key: Key, body: KnowledgeSettings) -> dict[str, Any]:
        """Change settings; new chunking settings apply to datasources added afterwards. The embedding model
        cannot change while the base holds datasources (their vectors would not compare): 409."""
        current = (await service.require(key)).base
        changes = body.changes()
        base = dataclasses.replace(current, **changes)
        check_settings(size=base.chunk_size, overlap=base.chunk_overlap, splitter=base.splitter)
        if base.embedding_model != current.embedding_model and await service.datasources(key):
            raise Conflict(
                "The embedding model of a base that holds datasources cannot change; create a new base.",
                code="embedding_model_locked",
                param="embedding_model",
            )
        return _public(await service.update_base(base))

    @router.delete("/{key}", status_code=204, responses=error_responses(404))
    async def delete_base(key: Key) -> Response:
        """Removes the base with its datasources and chunks."""
        if not await service.delete_base(key):
            raise knowledge_base_not_found(key)
        return Response(status_code=204)

    @router.post("/{key}/datasources", status_code=202, responses=error_responses(400, 404, 413, 422))
    async def add_datasource(key: Key, request: Request, response: Response) -> dict[str, Any]:
        """multipart/form-data with `file` (and an optional `metadata` JSON object field), or JSON
        `{name, text, metadata?, file_type?}`. 202: queued for ingest; 200: these bytes are already in the base."""
        await service.require(key)
        name, content, content_type, metadata = await _upload(request, max_upload_bytes)
        if not content:
            raise RequestError("The upload is empty.", code="empty_upload", param="file")
        source, created = await service.add_datasource(key, name, content, content_type=content_type, metadata=metadata)
        response.status_code = 202 if created else 200
        return source.public()

    @router.get("/{key}/datasources", responses=error_responses(404))
    async def list_datasources(key: Key) -> dict[str, Any]:
        return {"data": [source.public() for source in await service.datasources(key)]}

    @router.get("/{key}/datasources/{datasource_id}", responses=error_responses(404))
    async def get_datasource(key: Key, datasource_id: str) -> dict[str, Any]:
        source = await service.datasource(key, datasource_id)
        if source is None:
            raise _datasource_not_found(datasource_id)
        return source.public()

    @router.delete("/{key}/datasources/{datasource_id}", status_code=204, responses=error_responses(404))
    async def delete_datasource(key: Key, datasource_id: str) -> Response:
        """Removes the datasource and its chunks (an ingest under way stops)."""
        if not await service.delete_datasource(key, datasource_id):
            raise _datasource_not_found(datasource_id)
        return Response(status_code=204)

    @router.get("/{key}/datasources/{datasource_id}/chunks", responses=error_responses(404))
    async def list_chunks(
        key: Key,
        datasource_id: str,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> dict[str, Any]:
        found = await service.chunks(key, datasource_id, limit, offset)
        if found is None:
            raise _datasource_not_found(datasource_id)
        return {
            "data": [
                {
                    "id": str(c.id),
                    "text": c.text,
                    "index": c.index,
                    "page_number": c.page_number,
                    "metadata": c.metadata,
                }
                for c in found
            ]
        }

    @router.delete(
        "/{key}/datasources/{datasource_id}/chunks/{chunk_id}", status_code=204, responses=error_responses(404)
    )
    async def delete_chunk(key: Key, datasource_id: str, chunk_id: Annotated[int, Path(ge=1)]) -> Response:
        if not await service.delete_chunk(key, datasource_id, chunk_id):
            raise NotFound(f"Chunk '{chunk_id}' not found in datasource '{datasource_id}'.", code="chunk_not_found")
        return Response(status_code=204)

    @router.post("/{key}/search", responses=error_responses(404, 502))
    async def search(key: Key, body: SearchBody) -> dict[str, Any]:
        """The router's knowledge query on one base; scores, metadata and vectors shaped by `search_options`."""
        parse_filter(body.filter_by)  # a malformed filter is a 422 naming its path, before any work
        found = await service.search(key, body.query_of())
        return {"data": [retrieval_public(r, body.search_options) for r in found]}

    app.include_router(router)


def _public(stored: StoredBase) -> dict[str, Any]:
    return base_public(stored.base, stored.created_at, stored.updated_at)


def _datasource_not_found(datasource_id: str) -> NotFound:
    return NotFound(f"Datasource '{datasource_id}' not found.", code="datasource_not_found", param="datasource_id")


async def _upload(request: Request, limit: int) -> tuple[str, bytes, str | None, dict[str, Any]]:
    """(file name, bytes, content type, metadata) of either upload form; 413 past `limit` (refused by the
    declared length before the body is read when there is one), 415 for any other body type."""
    declared = request.headers.get("content-length")
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    slack = _MULTIPART_SLACK if media == "multipart/form-data" else 0
    if declared is not None and declared.isdigit() and int(declared) > limit + slack:
        raise PayloadTooLarge(limit)
    if media == "multipart/form-data":
        return await _multipart(request, limit)
    if media == "application/json":
        raw = bytearray()
        async for part in request.stream():
            raw += part
            if len(raw) > limit + 4096:
                raise PayloadTooLarge(limit)
        try:
            body = TextDatasource.model_validate_json(bytes(raw))
        except ValidationError as exc:
            raise validation_error([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None
        content = body.text.encode()
        if len(content) > limit:
            raise PayloadTooLarge(limit)
        return body.name, content, body.file_type, body.metadata
    raise UnsupportedMediaType(
        f"Send the datasource as multipart/form-data (a `file` field) or as JSON text, not '{media or 'no type'}'.",
        param=None,
    )


async def _multipart(request: Request, limit: int) -> tuple[str, bytes, str | None, dict[str, Any]]:
    form = await request.form(max_files=1, max_fields=8)
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ValidationFailed([FieldError(("body", "file"), "A `file` field with the document is required.")])
        content = await upload.read(limit + 1)
        if len(content) > limit:
            raise PayloadTooLarge(limit)
        metadata: dict[str, Any] = {}
        raw = form.get("metadata")
        if raw is not None:
            try:
                metadata = orjson.loads(raw if isinstance(raw, str) else await raw.read())
            except orjson.JSONDecodeError:
                metadata = None  # type: ignore[assignment]
            if not isinstance(metadata, dict):
                raise ValidationFailed([FieldError(("body", "metadata"), "metadata must be a JSON object.")])
        content_type = upload.content_type
        if content_type in (None, "", "application/octet-stream"):
            content_type = None  # the file name's extension decides
        return upload.filename or "upload.txt", content, content_type, metadata
    finally:
        await form.close()
