"""The App market: the catalog's apps with icons, search and category filter
(a plain GET form, so it works without JavaScript), a detail page per app, and
one-click install or update for admins (the same rule as uploading a package).

Everything from the catalog is untrusted: text goes through Jinja's escaping and
Markdown without raw HTML; icons and screenshots are only SVG or PNG, served
with a CSP that forbids script (``apps.ICON_HEADERS``) and shown as ``<img>``.
A catalog that cannot be read or is malformed gives the page with its message
(HTTP 502), never a 500.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from sandhaven.errors import CatalogError, NotFound, RequestError
from sandhaven.identity.users import UserView
from sandhaven.shell.auth import admin_user, current_user, services
from sandhaven.shell.pages.apps import ICON_HEADERS
from sandhaven.shell.render import redirect, render

router = APIRouter()
AppIdPath = Annotated[str, Path(max_length=52)]
CATALOG_IMAGE_HEADERS = {**ICON_HEADERS, "Cache-Control": "private, max-age=300"}


def _market(request: Request, status: int = 200, q: str = "", category: str = "",
            **ctx) -> Response:  # type: ignore[no-untyped-def]
    catalog = services(request).catalog
    apps, categories, error = [], [], ctx.pop("error", None)
    try:
        apps = catalog.listing(q, category)
        categories = catalog.categories()
    except CatalogError as exc:
        error, status = error or str(exc), 502
    return render(request, "market.html", status=status, title="App market", section="market",
                  apps=apps, categories=categories, q=q, category=category, error=error,
                  source=catalog.source.location, signed=bool(catalog.public_key),
                  updates=[m for m in apps if m.state == "update"] if not (q or category)
                  else [], **ctx)


@router.get("/market")
def market(request: Request, user: UserView = Depends(current_user),
           q: Annotated[str, Query(max_length=200)] = "",
           category: Annotated[str, Query(max_length=40)] = "") -> Response:
    return _market(request, q=q.strip(), category=category)


@router.get("/market/{app_id}")
def market_app(request: Request, app_id: AppIdPath,
               user: UserView = Depends(current_user)) -> Response:
    catalog = services(request).catalog
    try:
        found = [m for m in catalog.listing() if m.entry.app_id == app_id]
        if not found:
            raise NotFound(f"The catalog has no app {app_id!r}.")
        detail = catalog.detail(app_id)
    except CatalogError as exc:
        return _market(request, error=str(exc))
    return render(request, "market_app.html", title=found[0].entry.title, section="market",
                  app=found[0], detail=detail)


def _image(fetch) -> Response:  # type: ignore[no-untyped-def]
    try:
        data, media_type = fetch()
    except CatalogError:
        raise NotFound("This image cannot be read from the catalog.") from None
    return Response(data, media_type=media_type, headers=CATALOG_IMAGE_HEADERS)


@router.get("/market/{app_id}/icon")
def market_icon(request: Request, app_id: AppIdPath,
                user: UserView = Depends(current_user)) -> Response:
    return _image(lambda: services(request).catalog.icon(app_id))


@router.get("/market/{app_id}/screenshots/{number}")
def market_screenshot(request: Request, app_id: AppIdPath,
                      number: Annotated[int, Path(ge=0, le=19)],
                      user: UserView = Depends(current_user)) -> Response:
    return _image(lambda: services(request).catalog.screenshot(app_id, number))


@router.post("/market/{app_id}/install")
async def market_install(request: Request, app_id: AppIdPath,
                         user: UserView = Depends(admin_user)) -> Response:
    """Download, check against the index, install; then the Apps page, where the
    app's "New …" buttons are."""
    try:
        await run_in_threadpool(services(request).catalog.install, app_id, user.id)
    except (CatalogError, RequestError) as exc:
        return _market(request, status=exc.status, error=str(exc))
    return redirect("/apps", "installed")
