"""Login, logout, dev accounts, first-admin setup and accepting invitations."""

from __future__ import annotations

import re

import structlog
from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from sandhaven.errors import RequestError
from sandhaven.identity.email_login import LOGIN_MINUTES
from sandhaven.identity.sessions import COOKIE_NAME
from sandhaven.identity.users import UserView
from sandhaven.shell.auth import client_ip, login_session_id, optional_user, services
from sandhaven.shell.render import redirect, render

router = APIRouter()
log = structlog.get_logger("sandhaven.login")


# Where a login may lead back to: only a sharing link of this server, so a crafted
# login address cannot send anyone elsewhere.
_NEXT = re.compile(r"/shared/[A-Za-z0-9_-]{1,100}")


def safe_next(value: str) -> str:
    """``value`` when it is a local sharing-link path, else ""."""
    return value if _NEXT.fullmatch(value or "") else ""


def log_in(request: Request, user: UserView, to: str = "/grains", done: str | None = None
           ) -> Response:
    """End any session the browser had, start a new one (rotation), set the cookie."""
    svc = services(request)
    svc.identity.sessions.end(request.cookies.get(COOKIE_NAME))
    token = svc.identity.sessions.create(user.id, request.headers.get("user-agent", ""))
    response = redirect(to, done)
    response.set_cookie(COOKIE_NAME, token, httponly=True, samesite="lax",
                        secure=svc.settings.https, path="/",
                        max_age=svc.settings.session_days * 86400)
    log.info("logged_in", user_id=user.id)
    return response


def _after_login(request: Request, user: UserView, created: bool, next_path: str
                 ) -> Response:
    """Back to the sharing link the login started from, else the usual page."""
    if safe_next(next_path):
        return log_in(request, user, next_path)
    return log_in(request, user, "/account" if created else "/grains",
                  "welcome" if created else None)


@router.get("/login")
def login_page(request: Request, next: str = "") -> Response:
    next = safe_next(next)
    if optional_user(request):
        return redirect(next or "/grains")
    return render(request, "login.html", title="Log in", next=next,
                  mail_configured=services(request).mailer.configured())


@router.post("/login")
def login_submit(request: Request, email: str = Form(""), next: str = Form("")) -> Response:
    svc = services(request)
    next = safe_next(next)
    try:
        svc.identity.email_login.request(email, client_ip(request), next)
    except RequestError as exc:
        return render(request, "login.html", status=exc.status, title="Log in", error=str(exc),
                      email=email[:320], mail_configured=svc.mailer.configured(), next=next)
    return render(request, "login_code.html", title="Check your mail", sent=True,
                  email=email.strip()[:320], minutes=LOGIN_MINUTES, next=next)


@router.get("/login/code")
def code_page(request: Request, next: str = "") -> Response:
    return render(request, "login_code.html", title="Enter code", minutes=LOGIN_MINUTES,
                  next=safe_next(next))


@router.post("/login/code")
def code_submit(request: Request, email: str = Form(""), code: str = Form(""),
                next: str = Form("")) -> Response:
    svc = services(request)
    try:
        result = svc.identity.email_login.verify_code(email, code)
    except RequestError as exc:
        return render(request, "login_code.html", status=exc.status, title="Enter code",
                      error=str(exc), email=email[:320], minutes=LOGIN_MINUTES,
                      next=safe_next(next))
    return _after_login(request, result.user, result.created, next)


@router.get("/login/verify")
def verify_page(request: Request, token: str = "", next: str = "") -> Response:
    # A GET must not use the link up: mail scanners fetch links. A button POSTs it.
    return render(request, "login_verify.html", title="Log in", token=token[:100],
                  next=safe_next(next))


@router.post("/login/verify")
def verify_submit(request: Request, token: str = Form(""), next: str = Form("")) -> Response:
    result = services(request).identity.email_login.verify_link(token)
    return _after_login(request, result.user, result.created, next)


@router.post("/logout")
def logout(request: Request) -> Response:
    svc = services(request)
    login = login_session_id(request)
    svc.identity.sessions.end(request.cookies.get(COOKIE_NAME))
    if login is not None and svc.grain_sessions is not None:
        svc.grain_sessions.revoke_login(login)  # the grains opened from this login
    response = redirect("/login")
    response.delete_cookie(COOKIE_NAME, path="/")
    return response


@router.post("/dev/login")
def dev_login(request: Request, name: str = Form(""), next: str = Form("")) -> Response:
    user = services(request).identity.dev_login(name)
    return log_in(request, user, safe_next(next) or "/grains")


@router.get("/setup/{token}")
def setup_page(request: Request, token: str) -> Response:
    services(request).identity.setup.check(token)
    return render(request, "setup.html", title="Set up")


@router.post("/setup/{token}")
def setup_submit(request: Request, token: str, email: str = Form(""),
                 name: str = Form("")) -> Response:
    svc = services(request)
    svc.identity.setup.check(token)
    try:
        user = svc.identity.setup.complete(token, email, name)
    except RequestError as exc:
        if exc.status in (404, 410):
            raise
        return render(request, "setup.html", status=exc.status, title="Set up", error=str(exc),
                      email=email[:320], name=name[:200])
    log.info("first_admin_created", user_id=user.id)
    return log_in(request, user, "/admin", "welcome")


@router.get("/invite/{token}")
def invite_page(request: Request, token: str) -> Response:
    invite = services(request).identity.invites.peek(token)
    return render(request, "invite.html", title="Join", invite=invite)


@router.post("/invite/{token}")
def invite_submit(request: Request, token: str, name: str = Form(""),
                  email: str = Form("")) -> Response:
    svc = services(request)
    invite = svc.identity.invites.peek(token)
    try:
        result = svc.identity.email_login.accept_invite(token, name, email or None,
                                                        client_ip(request))
    except RequestError as exc:
        if exc.status in (404, 410):
            raise
        return render(request, "invite.html", status=exc.status, title="Join", invite=invite,
                      error=str(exc), name=name[:200], email=email[:320])
    if result is None:
        return render(request, "invite.html", title="Join", invite=invite, sent=True,
                      email=email.strip()[:320])
    return log_in(request, result.user, "/account", "welcome")
