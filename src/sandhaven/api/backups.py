"""``/api/v1`` routes for grain backups: download one (owner only) and restore one
as a new grain. Both go through temporary files that have no name on disk
(``tempfile.TemporaryFile``): nothing is left to clean up after a kill, and no
cleanup job can expire an upload still receiving bytes."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import BinaryIO
from urllib.parse import unquote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from sandhaven.api import schemas
from sandhaven.backup.service import GrainBackups, download_name
from sandhaven.errors import InvalidInput, PayloadTooLarge
from sandhaven.identity.users import UserView
from sandhaven.shell.auth import current_user, services

router = APIRouter(tags=["grains"])
PASSPHRASE_HEADER = "Sandhaven-Backup-Passphrase"
ERRORS = {code: {"model": schemas.ErrorBody}
          for code in (400, 401, 403, 404, 409, 413, 422, 507)}
CHUNK = 1024 * 1024


def backups(request: Request) -> GrainBackups:
    found = services(request).backups
    assert found is not None
    return found


async def backup_response(request: Request, user_id: str, grain_id: str,
                          passphrase: str | None = None) -> StreamingResponse:
    """The backup of ``grain_id`` as a download with ``Content-Length`` and a file
    name made from the grain's title (``.zip.gpg`` when encrypted with
    ``passphrase``). Raises NotFound, Forbidden, BadBackup (passphrase)."""
    svc = backups(request)
    view = svc.check_owner(user_id, grain_id)
    f = svc.temp_file()
    try:
        await svc.backup(user_id, grain_id, f, passphrase)
        size = f.seek(0, os.SEEK_END)
        f.seek(0)
    except BaseException:
        f.close()
        raise
    encrypted = passphrase is not None
    return StreamingResponse(_stream(f), media_type=(
        "application/pgp-encrypted" if encrypted else "application/zip"), headers={
        "Content-Length": str(size), "Cache-Control": "no-store",
        "Content-Disposition": download_name(view.title, ".zip.gpg" if encrypted else ".zip")})


async def _stream(f: BinaryIO) -> AsyncIterator[bytes]:
    try:
        while chunk := await run_in_threadpool(f.read, CHUNK):
            yield chunk
    finally:
        f.close()


async def spool_upload(request: Request, chunks: AsyncIterator[bytes], limit: int) -> BinaryIO:
    """Write an uploaded body to an anonymous temporary file; returns it at offset 0.
    Raises PayloadTooLarge past ``limit`` bytes (the file is gone then)."""
    f = backups(request).temp_file()
    try:
        size = 0
        async for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"The backup is larger than the limit of "
                                      f"{limit // (1024 * 1024)} MiB.")
            await run_in_threadpool(f.write, chunk)
        f.seek(0)
        return f
    except BaseException:
        f.close()
        raise


@router.get("/grains/{grain_id}/backup", responses={
    **ERRORS, 200: {"content": {"application/zip": {}},
                    "description": "The backup zip (docs/reference/backup-format.md)"}})
async def download_backup(grain_id: str, request: Request,
                          user: UserView = Depends(current_user)) -> StreamingResponse:
    """A backup of one of the caller's grains. The grain stops for the copy and may
    start again as soon as the copy is written; only the owner may back up (403)."""
    return await backup_response(request, user.id, grain_id)


@router.post("/grains/{grain_id}/backup", responses={
    **ERRORS, 200: {"content": {"application/pgp-encrypted": {}},
                    "description": "The backup, encrypted with the passphrase (OpenPGP; "
                                   "`gpg --decrypt` opens it)"}})
async def download_encrypted_backup(grain_id: str, body: schemas.BackupRequest,
                                    request: Request,
                                    user: UserView = Depends(current_user)) -> StreamingResponse:
    """A backup encrypted with ``passphrase`` (at least 8 characters)."""
    return await backup_response(request, user.id, grain_id, body.passphrase)


@router.post("/grains/restore", response_model=schemas.Grain, status_code=201,
             responses=ERRORS,
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/zip": {"schema": {"type": "string", "format": "binary"}}}}})
async def restore_backup(request: Request,
                         user: UserView = Depends(current_user)) -> schemas.Grain:
    """Restore the backup sent as the raw request body as a new grain of the caller;
    an encrypted backup's passphrase goes in the ``Sandhaven-Backup-Passphrase``
    header (percent-encoded UTF-8). The whole file is checked first; 409 names the
    app (version) it needs, 507 when it does not fit the caller's quota or the disk.
    A refusal leaves nothing."""
    limit = services(request).settings.get("grains.max_restore_mib") * 1024 * 1024
    raw = request.headers.get(PASSPHRASE_HEADER)
    try:
        passphrase = unquote(raw, errors="strict") if raw else None
    except UnicodeDecodeError:
        raise InvalidInput(f"Header {PASSPHRASE_HEADER}: not percent-encoded UTF-8.") from None
    with await spool_upload(request, request.stream(), limit) as f:
        view = await backups(request).restore(user.id, f, passphrase)
    return schemas.Grain(**view.api())
