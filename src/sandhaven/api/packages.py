"""``/api/v1`` routes for app packages: install (raw ``.spk`` body), list, uninstall.

Installing and uninstalling are admin actions: a package runs code for every user
of the server. Listing installed apps is open to every logged-in user.
"""

from __future__ import annotations

import tempfile

from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from sandhaven.api import schemas
from sandhaven.errors import PayloadTooLarge
from sandhaven.identity.users import UserView
from sandhaven.shell.auth import admin_user, current_user, services

router = APIRouter(tags=["packages"])
ERRORS = {code: {"model": schemas.ErrorBody} for code in (400, 401, 403, 404, 409, 413, 422)}


@router.post("/packages", response_model=schemas.PackageInstalled, status_code=201,
             responses={**ERRORS, 200: {"model": schemas.PackageInstalled,
                                        "description": "Already installed (no change)"}},
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/octet-stream": {"schema": {"type": "string",
                                                         "format": "binary"}}}}})
async def install(request: Request, response: Response,
                  admin: UserView = Depends(admin_user)) -> schemas.PackageInstalled:
    """Install the ``.spk`` sent as the raw request body. 201 when installed, 200
    when this exact package was already installed. The body is streamed to a
    temporary file beside the package trees and verified before anything is
    unpacked; every refusal leaves nothing behind."""
    svc = services(request).packages
    svc.packages_dir.mkdir(parents=True, exist_ok=True)
    limit = svc.limits.max_spk_bytes
    with tempfile.TemporaryFile(dir=svc.packages_dir, prefix=".upload-") as f:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"The package is larger than the limit of {limit} bytes.")
            await run_in_threadpool(f.write, chunk)
        result = await run_in_threadpool(svc.install, f, admin.id)
    if not result.created:
        response.status_code = 200
    return schemas.PackageInstalled(**result.as_json())


@router.get("/apps", response_model=list[schemas.InstalledApp], responses=ERRORS)
def list_apps(request: Request, user: UserView = Depends(current_user)
              ) -> list[schemas.InstalledApp]:
    """Installed apps, each with its newest package and the IDs of all its packages."""
    return [schemas.InstalledApp(
        app_id=a.app_id, package_id=a.package_id, title=a.title, version=a.version,
        marketing_version=a.marketing_version, package_ids=list(a.versions),
        short_description=a.manifest.metadata.short_description,
        actions=[x.noun_phrase for x in a.manifest.actions],
    ) for a in services(request).packages.apps()]


@router.delete("/packages/{package_id}", status_code=204, responses=ERRORS)
async def uninstall(package_id: str, request: Request,
                    admin: UserView = Depends(admin_user)) -> Response:
    """Remove an installed package. 409 while grains use it (the message names them)."""
    await run_in_threadpool(services(request).packages.uninstall, package_id)
    return Response(status_code=204)
