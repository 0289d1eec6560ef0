"""``/log/``: the C2SP tlog-tiles read path (checkpoint, hash tiles, entry bundles).

The checkpoint and hash tiles are public: they reveal only how many entries there are. Entry
bundles carry custody data and need an auditor token.
"""

from __future__ import annotations

import gzip

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool

from services.ledger.api.dependencies import Auditor
from services.ledger.domain.integrity.tiles import TileError, TileRef, parse_tile_path
from services.ledger.readside import ReadSide
from services.web.openapi import problem_responses
from services.web.problems import Problem

CHECKPOINT_MEDIA_TYPE = "text/plain; charset=utf-8"
TILE_MEDIA_TYPE = "application/octet-stream"
CHECKPOINT_CACHE = "public, max-age=5"
TILE_CACHE = "public, max-age=31536000, immutable"
ENTRIES_CACHE = "private, max-age=31536000, immutable"
_TILE_RESPONSES = {200: {"content": {TILE_MEDIA_TYPE: {}}}, **problem_responses(404, 422)}


def router(read_side: ReadSide) -> APIRouter:
    routes = APIRouter(prefix="/log", tags=["transparency log"])

    def parsed(path: str, *, entries: bool) -> TileRef:
        try:
            ref = parse_tile_path(("entries/" if entries else "") + path)
        except TileError as error:
            raise Problem(422, "Invalid tile path", str(error)) from error
        if ref.is_entries != entries:
            raise Problem(422, "Invalid tile path", "entry bundles are under /log/tile/entries/")
        return ref

    async def read(ref: TileRef) -> bytes:
        try:
            return await run_in_threadpool(read_side.log.tile, ref)
        except TileError as error:
            raise Problem(404, "Not found", str(error)) from error

    @routes.get(
        "/checkpoint",
        summary="The latest signed checkpoint with its witness cosignatures",
        response_class=Response,
        responses={200: {"content": {CHECKPOINT_MEDIA_TYPE: {}}}, **problem_responses(404)},
    )
    async def checkpoint() -> Response:
        note = await run_in_threadpool(read_side.log.checkpoint)
        if note is None:
            raise Problem(404, "Not found", "no checkpoint has been signed yet")
        return Response(
            note, media_type=CHECKPOINT_MEDIA_TYPE, headers={"Cache-Control": CHECKPOINT_CACHE}
        )

    @routes.get(
        "/tile/entries/{path:path}",
        summary="An entry bundle: the entries' hashed documents, uint16-length-prefixed",
        response_class=Response,
        responses=_TILE_RESPONSES,
    )
    async def entry_bundle(_: Auditor, request: Request, path: str) -> Response:
        data = await read(parsed(path, entries=True))
        headers = {"Cache-Control": ENTRIES_CACHE, "Vary": "Accept-Encoding"}
        if "gzip" in request.headers.get("accept-encoding", ""):
            data = gzip.compress(data, compresslevel=6)
            headers["Content-Encoding"] = "gzip"
        return Response(data, media_type=TILE_MEDIA_TYPE, headers=headers)

    @routes.get(
        "/tile/{path:path}",
        summary="A hash tile: 256 (or, partial, fewer) Merkle tree hashes at one tile level",
        response_class=Response,
        responses=_TILE_RESPONSES,
    )
    async def hash_tile(path: str) -> Response:
        data = await read(parsed(path, entries=False))
        return Response(data, media_type=TILE_MEDIA_TYPE, headers={"Cache-Control": TILE_CACHE})

    return routes
