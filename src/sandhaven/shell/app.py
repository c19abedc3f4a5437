"""The shell host's ASGI app: pages, static files and the ``/api/v1`` API.

Middleware, outermost first: security headers, HEAD as GET, body limit (413),
CSRF (403), then the routes.
Every error becomes a page or JSON through :mod:`sandhaven.shell.errors`.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from sandhaven import __version__
from sandhaven.api.backups import router as backups_api_router
from sandhaven.api.catalog import router as catalog_api_router
from sandhaven.api.grains import router as grains_api_router
from sandhaven.api.packages import router as packages_api_router
from sandhaven.api.routes import router as api_router
from sandhaven.errors import Forbidden, PayloadTooLarge
from sandhaven.services import Services
from sandhaven.shell import errors
from sandhaven.shell.csrf import CSRFMiddleware, origin_of
from sandhaven.shell.headers import HeadAsGet, ShellSecurityHeaders
from sandhaven.shell.limits import BodyLimitMiddleware
from sandhaven.shell.pages import (
    account,
    admin,
    apps,
    grains,
    login,
    main,
    market,
    pictures,
    sharing,
)

STATIC = Path(__file__).with_name("static")
PAGE_ROUTERS = (login.router, account.router, admin.router, apps.router, market.router,
                grains.router,
                sharing.router, pictures.router, main.router)


def create_api(services: Services) -> FastAPI:
    api = FastAPI(title="Sandhaven API", version=__version__, openapi_url="/openapi.json",
                  docs_url=None, redoc_url=None,
                  description="Everything the Sandhaven shell does, for scripts. "
                              "Authenticate with `Authorization: Bearer <personal API token>`.")
    api.state.services = services
    api.include_router(api_router)
    api.include_router(packages_api_router)
    api.include_router(catalog_api_router)
    api.include_router(grains_api_router)
    api.include_router(backups_api_router)
    for router in services.extra.get("api_routers", ()):
        api.include_router(router)
    errors.install(api)
    return api


def create_shell(services: Services) -> FastAPI:
    """The shell app for one server's services."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.state.services = services
    for router in (*PAGE_ROUTERS, *services.extra.get("shell_routers", ())):
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.mount("/api/v1", create_api(services))
    errors.install(app)

    async def refuse_csrf(scope: Scope, receive: Receive, send: Send) -> None:
        reason = scope.get("state", {}).get("csrf_reason", "Request refused.")
        request = Request(scope, receive)
        response = errors.error_response(request, 403, Forbidden.code, reason)
        await response(scope, receive, send)

    async def refuse_large(scope: Scope, receive: Receive, send: Send) -> None:
        exc = scope.get("state", {}).get("error") or PayloadTooLarge("Request body too large.")
        request = Request(scope, receive)
        response = errors.error_response(request, 413, exc.code, str(exc))
        await response(scope, receive, send)

    app.add_middleware(CSRFMiddleware, allowed_origin=origin_of(services.settings.base_url),
                       secret=services.secrets.csrf, reject=refuse_csrf)
    app.add_middleware(BodyLimitMiddleware, limit=services.settings.max_body_bytes,
                       overrides=services.extra.get("body_limits", {}), reject=refuse_large)
    app.add_middleware(HeadAsGet)
    app.add_middleware(ShellSecurityHeaders, base_url=services.settings.base_url,
                       wildcard_host=services.settings.wildcard_host)
    return app
