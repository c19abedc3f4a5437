"""Turning errors into pages (shell) or JSON (API). No traceback ever reaches a client.

API errors have the shape ``{"error": {"code": "...", "message": "..."}}``.
"""

from __future__ import annotations

import structlog
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException

from sandhaven.errors import NotAuthenticated, SandhavenError
from sandhaven.shell.render import render

log = structlog.get_logger("sandhaven.shell")

HEADINGS = {400: "That did not work", 401: "Please log in", 403: "Not allowed",
            404: "Not found", 405: "Not allowed", 409: "Conflict", 410: "Link no longer valid",
            413: "Too large", 422: "That did not work", 429: "Slow down",
            500: "Something went wrong", 502: "Mail could not be sent"}


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def json_error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def error_response(request: Request, status: int, code: str, message: str) -> Response:
    if _is_api(request):
        response: Response = json_error(status, code, message)
        if status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="sandhaven"'
        return response
    if status == 401 and request.method in ("GET", "HEAD"):
        return RedirectResponse("/login", status_code=303)
    return render(request, "error.html", status=status, heading=HEADINGS.get(status, "Error"),
                  message=message, title=HEADINGS.get(status, "Error"))


async def sandhaven_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SandhavenError)
    if exc.status >= 500:
        log.warning("request_failed", error=exc.code, path=request.url.path, reason=str(exc))
    if isinstance(exc, NotAuthenticated) and not _is_api(request):
        return error_response(request, 401, exc.code, str(exc))
    return error_response(request, exc.status, exc.code, str(exc))


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    messages = {404: "There is no page at this address.",
                405: "This address does not accept that kind of request."}
    message = messages.get(exc.status_code, str(exc.detail))
    return error_response(request, exc.status_code, "http_error", message)


async def validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    if first.get("type") == "json_invalid":
        reason = (first.get("ctx") or {}).get("error", "malformed")
        return error_response(request, 422 if _is_api(request) else 400, "invalid_input",
                              f"Request body is not valid JSON: {reason}.")
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    message = f"Field '{where}': {first.get('msg', 'invalid')}." if where else \
        f"Request body is invalid: {first.get('msg', 'invalid')}."
    return error_response(request, 422 if _is_api(request) else 400, "invalid_input", message)


async def unexpected_error(request: Request, exc: Exception) -> Response:
    log.error("unexpected_error", path=request.url.path, exc_info=exc)
    return error_response(request, 500, "internal",
                          "Something went wrong on the server. It has been logged.")


def install(app) -> None:  # type: ignore[no-untyped-def]
    app.add_exception_handler(SandhavenError, sandhaven_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, unexpected_error)
