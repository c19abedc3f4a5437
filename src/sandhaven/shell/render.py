"""Rendering shell pages: Jinja2 templates with the context every page needs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from markdown_it import MarkdownIt
from markupsafe import Markup

from sandhaven.identity.service import DEV_USERS
from sandhaven.identity.sessions import COOKIE_NAME
from sandhaven.shell.csrf import CSRF_COOKIE, new_csrf_token, session_csrf_token

templates = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))
# Package text is untrusted: CommonMark with raw HTML off ("js-default" also
# refuses javascript: and data: links), so a description can only be formatting.
_markdown = MarkdownIt("js-default")


def markdown(text: str) -> Markup:
    """Render untrusted Markdown to safe HTML (no raw HTML, no script links)."""
    return Markup(_markdown.render(text or ""))


templates.env.filters["markdown"] = markdown

# Fixed notices a redirect may name (?done=KEY); never echo text from the URL.
NOTICES = {
    "profile": "Profile saved.",
    "revoked": "Token revoked.",
    "settings": "Settings saved.",
    "test-mail": "Test mail sent.",
    "user": "User updated.",
    "deleted": "User deleted.",
    "invite-sent": "Invitation sent.",
    "invite-revoked": "Invitation withdrawn.",
    "logged-out-all": "You were logged out everywhere, here included.",
    "welcome": "Welcome to Sandhaven.",
    "renamed": "Grain renamed.",
    "stopped": "Grain stopped.",
    "restored-backup": "Backup restored as a new grain.",
    "trashed": "Grain moved to the trash.",
    "restored": "Grain restored.",
    "purged": "Grain deleted for good.",
    "token-revoked": "API token revoked.",
    "share-revoked": "Access revoked.",
    "share-changed": "Role changed.",
    "request-granted": "Access granted.",
    "request-dismissed": "Request dismissed.",
    "shared": "Shared. They were told by mail where outgoing mail is set up.",
    "installed": "App package installed.",
    "already-installed": "That package was already installed; nothing changed.",
    "uninstalled": "App package uninstalled.",
}


def csrf_token(request: Request) -> str:
    """The request's CSRF token: bound to the login session when there is one, else
    the visitor's CSRF cookie (a new one is set on the response if missing)."""
    session = request.cookies.get(COOKIE_NAME)
    if session:
        return session_csrf_token(request.app.state.services.secrets.csrf, session)
    token = request.cookies.get(CSRF_COOKIE)
    if not token or len(token) > 100:
        token = getattr(request.state, "new_csrf", None) or new_csrf_token()
        request.state.new_csrf = token
    return token


def set_csrf_cookie(request: Request, response: Any) -> None:
    new = getattr(request.state, "new_csrf", None)
    if new:
        svc = request.app.state.services
        response.set_cookie(CSRF_COOKIE, new, httponly=True, samesite="lax",
                            secure=svc.settings.https, path="/")


def render(request: Request, template: str, status: int = 200, **context: Any
           ) -> HTMLResponse:
    """Render ``template`` with the page context; ``context`` may use any key."""
    svc = request.app.state.services
    ctx = {
        "request": request,
        "user": getattr(request.state, "user", None),
        "csrf_token": csrf_token(request),
        "dev_mode": svc.identity.dev_mode,
        "plaintext_storage": not svc.settings.storage_encryption,
        "dev_users": DEV_USERS,
        "notice": NOTICES.get(request.query_params.get("done", "")),
        **context,
    }
    response = templates.TemplateResponse(request, template, ctx, status_code=status)
    set_csrf_cookie(request, response)
    response.headers["Cache-Control"] = "no-store"
    return response


def redirect(url: str, done: str | None = None) -> RedirectResponse:
    """303 See Other to a local path (never to a URL from the request)."""
    assert url.startswith("/") and not url.startswith("//")
    if done:
        url += ("&" if "?" in url else "?") + f"done={done}"
    return RedirectResponse(url, status_code=303)
