"""``/api/v1`` routes for the app catalog: list it (with what is installed and
which updates exist), one app's details, and install from it.

Installing from the catalog is an admin action, as uploading a package is.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from sandhaven.api import schemas
from sandhaven.catalog.service import MarketApp
from sandhaven.identity.users import UserView
from sandhaven.shell.auth import admin_user, current_user, services

router = APIRouter(tags=["catalog"])
ERRORS = {code: {"model": schemas.ErrorBody} for code in (400, 401, 403, 404, 409, 413, 422,
                                                          502)}
AppIdPath = Annotated[str, Path(max_length=52)]


class CatalogApp(BaseModel):
    app_id: str
    title: str
    short_description: str
    categories: list[str]
    license: dict[str, str] | None
    author: str
    marketing_version: str
    version: int
    package_id: str
    size: int = Field(description="bytes of the .spk")
    installed_version: int | None = Field(description="newest installed version, or null")
    state: str = Field(description="available, installed, or update (the catalog has a "
                                   "higher version than the installed one)")


class CatalogListing(BaseModel):
    source: str = Field(description="where the catalog is read from (for admins; empty "
                                    "for others)")
    apps: list[CatalogApp]


class CatalogAppDetail(CatalogApp):
    description: str = Field(description="Markdown, from the package's manifest")
    website: str
    code_url: str
    screenshots: int = Field(description="how many; each at /market/{app_id}/screenshots/{n}")
    change_log: str


def _app(m: MarketApp) -> CatalogApp:
    e = m.entry
    return CatalogApp(
        app_id=e.app_id, title=e.title, short_description=e.short_description,
        categories=list(e.categories),
        license=e.license.model_dump(exclude_none=True) if e.license else None,
        author=e.author, marketing_version=e.marketing_version, version=e.version,
        package_id=e.package_id, size=e.size, installed_version=m.installed_version,
        state=m.state)


@router.get("/catalog", response_model=CatalogListing, responses=ERRORS)
def list_catalog(request: Request, user: UserView = Depends(current_user),
                 q: Annotated[str, Query(max_length=200)] = "",
                 category: Annotated[str, Query(max_length=40)] = "") -> CatalogListing:
    """The catalog's apps matching ``q`` (words in title, short description or
    author) and ``category``. 502 when the catalog cannot be read or is malformed."""
    catalog = services(request).catalog
    return CatalogListing(source=catalog.source.location if user.is_admin else "",
                          apps=[_app(m) for m in catalog.listing(q, category)])


@router.get("/catalog/{app_id}", response_model=CatalogAppDetail, responses=ERRORS)
def get_catalog_app(app_id: AppIdPath, request: Request,
                    user: UserView = Depends(current_user)) -> CatalogAppDetail:
    """One app of the catalog with its detail file (description, links, change log)."""
    catalog = services(request).catalog
    catalog.entry(app_id)  # 404 before anything else
    found = next(m for m in catalog.listing() if m.entry.app_id == app_id)
    detail = catalog.detail(app_id)
    return CatalogAppDetail(
        **_app(found).model_dump(),
        description=detail.description if detail else "",
        website=detail.website if detail else "", code_url=detail.code_url if detail else "",
        screenshots=len(detail.screenshots) if detail else 0,
        change_log=detail.change_log if detail else "")


@router.post("/catalog/{app_id}/install", response_model=schemas.PackageInstalled,
             status_code=201, responses={**ERRORS, 200: {
                 "model": schemas.PackageInstalled,
                 "description": "Already installed (no change)"}})
async def install_from_catalog(app_id: AppIdPath, request: Request, response: Response,
                               admin: UserView = Depends(admin_user)
                               ) -> schemas.PackageInstalled:
    """Download the app's package, check its size, package ID, signature, app ID and
    version against the index, and install it (or update the installed app). 502
    with nothing installed when the package does not match the index."""
    result = await run_in_threadpool(services(request).catalog.install, app_id, admin.id)
    if not result.created:
        response.status_code = 200
    return schemas.PackageInstalled(**result.as_json())
