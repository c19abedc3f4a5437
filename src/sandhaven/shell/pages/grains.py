"""The Grains pages: the list (own grains and those shared with the user), the
trash, a grain's own page, and the forms that create, rename, stop, trash,
restore and purge grains."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import PlainTextResponse, Response
from starlette.datastructures import UploadFile

from sandhaven.api.backups import backup_response, backups, spool_upload
from sandhaven.api.routes import RowId
from sandhaven.errors import NotFound, RequestError
from sandhaven.identity.users import UserView
from sandhaven.shell.auth import client_of, current_user, login_session_id, services
from sandhaven.shell.render import redirect, render

router = APIRouter()


def human_size(n: int) -> str:
    """``1536`` → ``1.5 KiB``."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"  # pragma: no cover


def _list(request: Request, user: UserView, status: int = 200, **ctx) -> Response:  # type: ignore[no-untyped-def]
    svc = services(request)
    grains = svc.grains.list(user.id)  # type: ignore[union-attr]
    shared = svc.shares.shared_with(user.id)  # type: ignore[union-attr]
    return render(request, "grains.html", status=status, title="Grains", section="grains",
                  grains=grains, shared=shared, human_size=human_size, **ctx)


@router.get("/grains")
def grains(request: Request, user: UserView = Depends(current_user)) -> Response:
    return _list(request, user)


@router.get("/grains/trash")
def trash(request: Request, user: UserView = Depends(current_user)) -> Response:
    svc = services(request)
    return render(request, "trash.html", title="Trash", section="grains",
                  grains=svc.grains.list(user.id, trashed=True),  # type: ignore[union-attr]
                  days=svc.settings.grains_trash_days, human_size=human_size)


@router.post("/grains/new")
def new_grain(request: Request, user: UserView = Depends(current_user),
              app_id: str = Form(""), action: int = Form(0), title: str = Form("")) -> Response:
    try:
        view = services(request).grains.create(user.id, app_id, action,  # type: ignore[union-attr]
                                               title)
    except RequestError as exc:
        from sandhaven.shell.pages.apps import _page

        return _page(request, exc.status, error=str(exc))
    return redirect(f"/grains/{view.id}")


def grain_page_response(request: Request, user: UserView, grain_id: str, status: int = 200,
                        path: str = "/", **ctx) -> Response:  # type: ignore[no-untyped-def]
    """The grain page for its owner or a share holder (NotFound for anyone else):
    the grain in a frame, the share dialog with who has access, API tokens."""
    svc = services(request)
    grains, sessions = svc.grains, svc.grain_sessions
    assert grains is not None and sessions is not None and svc.shares is not None
    try:
        view = grains.get(user.id, grain_id)
        is_owner = True
    except NotFound:
        sessions.access(user.id, grain_id)  # raises NotFound without a share
        view, is_owner = grains.view(grain_id), False
    log = grains.read_log(user.id, grain_id) if is_owner and view.state == "crashed" else ""
    session = None
    if view.trashed_at is None:
        session = sessions.open(user.id, grain_id, client_of(request),
                                login_session_id(request))
    if not path.startswith("/") or path.startswith("//"):
        path = "/"
    manifest = grains.package_manifest(view.package_id)
    held = set(sessions.access(user.id, grain_id).permissions)
    # Roles this person may hand on: all for the owner, else those within what they hold.
    grantable = {i for i, role in enumerate(manifest.roles)
                 if is_owner or set(role.permissions) <= held}
    return render(request, "grain.html", status=status, title=view.title, section="grains",
                  grain=view, log=log, human_size=human_size, session=session,
                  frame_url=(session.url + "&path=" + quote(path, safe="/")) if session else "",
                  roles=list(enumerate(manifest.roles)), is_owner=is_owner,
                  grantable=grantable,
                  access=svc.shares.list_access(user.id, grain_id) if session else [],
                  requests=svc.access_requests.pending(user.id, grain_id)  # type: ignore[union-attr]
                  if is_owner else [],
                  tokens=svc.grain_tokens.list(user.id, grain_id) if session else [],  # type: ignore[union-attr]
                  api_url=svc.grain_tokens.url, **ctx)  # type: ignore[union-attr]


@router.get("/grains/{grain_id}")
def grain_page(request: Request, grain_id: str, path: str = "/",
               user: UserView = Depends(current_user)) -> Response:
    """The grain in a frame below its top bar; ``?path=`` opens the app at a path.
    Without access: 404, with a form to ask the owner (shown for any ID, so it
    reveals nothing)."""
    try:
        return grain_page_response(request, user, grain_id, path=path[:2000])
    except NotFound:
        return render(request, "request_access.html", status=404, title="No access",
                      section="grains", grain_id=grain_id[:40], sent=False)


@router.post("/grains/{grain_id}/api-tokens")
def new_api_token(request: Request, grain_id: str, user: UserView = Depends(current_user),
                  role: str = Form(""), label: str = Form("")) -> Response:
    tokens = services(request).grain_tokens
    try:
        role_index = None if role in ("", "full") else int(role)
        _, token = tokens.create(user.id, grain_id, role_index, label)  # type: ignore[union-attr]
    except ValueError:
        return grain_page_response(request, user, grain_id, 400,
                                   error="Choose a role from the list.")
    except RequestError as exc:
        if exc.status == 404:
            raise
        return grain_page_response(request, user, grain_id, exc.status, error=str(exc))
    return grain_page_response(request, user, grain_id, webkey=f"{tokens.url}#{token}")  # type: ignore[union-attr]


@router.post("/grains/{grain_id}/api-tokens/{token_id}/revoke")
def revoke_api_token(request: Request, grain_id: str, token_id: RowId,
                     user: UserView = Depends(current_user)) -> Response:
    services(request).grain_tokens.revoke(user.id, grain_id, token_id)  # type: ignore[union-attr]
    return redirect(f"/grains/{grain_id}", "token-revoked")


@router.get("/grains/{grain_id}/log")
def grain_log(request: Request, grain_id: str,
              user: UserView = Depends(current_user)) -> Response:
    """The grain's size-capped log (what its processes wrote), as plain text."""
    text = services(request).grains.read_log(user.id, grain_id)  # type: ignore[union-attr]
    return PlainTextResponse(text or "(the log is empty)\n", headers={
        "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox"})


@router.post("/grains/{grain_id}/rename")
def rename(request: Request, grain_id: str, user: UserView = Depends(current_user),
           title: str = Form("")) -> Response:
    try:
        services(request).grains.rename(user.id, grain_id, title)  # type: ignore[union-attr]
    except RequestError as exc:
        if exc.status == 404:
            raise
        return _list(request, user, exc.status, error=str(exc))
    return redirect("/grains", "renamed")


@router.post("/grains/restore-backup")
async def restore_backup(request: Request, user: UserView = Depends(current_user)) -> Response:
    """Multipart form with one ``backup`` file (CSRF token in the query string, so
    the file is streamed); the new grain opens when the restore succeeds."""
    limit = services(request).settings.get("grains.max_restore_mib") * 1024 * 1024
    async with request.form(max_files=1, max_fields=4) as form:
        upload = form.get("backup")
        if not isinstance(upload, UploadFile) or not upload.filename:
            return _list(request, user, 400, error="Choose a backup file (.zip) to restore.")
        passphrase = str(form.get("passphrase") or "") or None
        try:
            with await spool_upload(request, _chunks(upload), limit) as f:
                view = await backups(request).restore(user.id, f, passphrase)
        except RequestError as exc:
            return _list(request, user, exc.status, error=f"{upload.filename[:100]}: {exc}")
    return redirect(f"/grains/{view.id}", "restored-backup")


async def _chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await upload.read(1024 * 1024):
        yield chunk


@router.post("/grains/{grain_id}/backup")
async def backup(request: Request, grain_id: str, user: UserView = Depends(current_user),
                 passphrase: str = Form("")) -> Response:
    """Download the grain's backup, encrypted when a passphrase is given (a form, so
    a cross-site page cannot make a grain stop for a copy)."""
    try:
        return await backup_response(request, user.id, grain_id, passphrase or None)
    except RequestError as exc:
        if exc.status in (403, 404):
            raise
        return grain_page_response(request, user, grain_id, exc.status, error=str(exc))


@router.post("/grains/{grain_id}/stop")
async def stop(request: Request, grain_id: str,
               user: UserView = Depends(current_user)) -> Response:
    await services(request).grains.stop(user.id, grain_id)  # type: ignore[union-attr]
    return redirect(f"/grains/{grain_id}", "stopped")


@router.post("/grains/{grain_id}/trash")
async def to_trash(request: Request, grain_id: str,
                   user: UserView = Depends(current_user)) -> Response:
    await services(request).grains.trash(user.id, grain_id)  # type: ignore[union-attr]
    return redirect("/grains", "trashed")


@router.post("/grains/{grain_id}/restore")
def restore(request: Request, grain_id: str,
            user: UserView = Depends(current_user)) -> Response:
    services(request).grains.restore(user.id, grain_id)  # type: ignore[union-attr]
    return redirect("/grains/trash", "restored")


@router.post("/grains/{grain_id}/purge")
async def purge(request: Request, grain_id: str,
                user: UserView = Depends(current_user)) -> Response:
    await services(request).grains.purge(user.id, grain_id)  # type: ignore[union-attr]
    return redirect("/grains/trash", "purged")
