"""The Apps page: installed apps with icon, title, version, description and
actions; for admins, the package upload form and uninstall buttons."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from sandhaven.errors import NotFound, RequestError
from sandhaven.identity.users import UserView
from sandhaven.shell.auth import admin_user, current_user, services
from sandhaven.shell.render import redirect, render

router = APIRouter()

# An icon is package content: never let it run script on the shell's origin.
ICON_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "private, max-age=31536000, immutable",  # content-addressed
}


def _page(request: Request, status: int = 200, **ctx) -> Response:  # type: ignore[no-untyped-def]
    svc = services(request)
    # Found by the catalog's last update check (no catalog read here).
    return render(request, "apps.html", status=status, title="Apps", section="apps",
                  apps=svc.packages.apps(), updates=svc.catalog.updates, **ctx)


@router.get("/apps")
def apps(request: Request, user: UserView = Depends(current_user)) -> Response:
    return _page(request)


@router.post("/apps/upload")
async def upload(request: Request, user: UserView = Depends(admin_user)) -> Response:
    """Multipart form with one ``package`` file; the CSRF token comes in the query
    string so the file is streamed, not read by the CSRF check."""
    async with request.form(max_files=1, max_fields=4) as form:
        package = form.get("package")
        if not isinstance(package, UploadFile) or not package.filename:
            return _page(request, 400, error="Choose a .spk file to upload.")
        try:
            result = await run_in_threadpool(services(request).packages.install, package.file,
                                             user.id)
        except RequestError as exc:
            return _page(request, exc.status, error=f"{package.filename}: {exc}")
    return redirect("/apps", "installed" if result.created else "already-installed")


@router.post("/apps/{package_id}/uninstall")
async def uninstall(request: Request, package_id: str,
                    user: UserView = Depends(admin_user)) -> Response:
    try:
        await run_in_threadpool(services(request).packages.uninstall, package_id)
    except RequestError as exc:
        return _page(request, exc.status, error=str(exc))
    return redirect("/apps", "uninstalled")


@router.get("/apps/{package_id}/icon")
def icon(request: Request, package_id: str, user: UserView = Depends(current_user)
         ) -> Response:
    found = services(request).packages.icon(package_id)
    if found is None:
        raise NotFound("This package has no icon.")
    path, media_type = found
    return FileResponse(path, media_type=media_type, headers=ICON_HEADERS)
