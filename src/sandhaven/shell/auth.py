"""Who is calling: the login-session cookie (shell and API) or a personal API
token (``Authorization: Bearer``, API only)."""

from __future__ import annotations

from fastapi import Request

from sandhaven.errors import Forbidden, NotAuthenticated
from sandhaven.grains.access_log import Client
from sandhaven.identity.sessions import COOKIE_NAME
from sandhaven.identity.users import UserView
from sandhaven.services import Services


def services(request: Request) -> Services:
    return request.app.state.services


def optional_user(request: Request) -> UserView | None:
    """The logged-in user, or None. Cached on the request."""
    if hasattr(request.state, "user"):
        return request.state.user
    svc = services(request)
    user = None
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        user = svc.identity.tokens.authenticate(auth[7:].strip())
        if user is None:
            raise NotAuthenticated("The API token is not valid or was revoked.")
        request.state.via_token = True
    else:
        found = svc.identity.sessions.resolve(request.cookies.get(COOKIE_NAME))
        if found is not None:
            request.state.session_id, user = found
    request.state.user = user
    return user


def login_session_id(request: Request) -> str | None:
    """The stored ID of the shell login this request came with (None with an API
    token or without a login): grain sessions opened from it end with it."""
    optional_user(request)
    return getattr(request.state, "session_id", None)


def current_user(request: Request) -> UserView:
    """The logged-in user; raises NotAuthenticated (the shell redirects to login)."""
    user = optional_user(request)
    if user is None:
        raise NotAuthenticated("Log in first.")
    return user


def admin_user(request: Request) -> UserView:
    user = current_user(request)
    if not user.is_admin:
        raise Forbidden("Only an admin can see this page.")
    return user


def client_ip(request: Request) -> str:
    return request.client.host if request.client else ""


def client_of(request: Request) -> Client:
    """The request's address and user agent, for a grain's access log."""
    return Client(ip=client_ip(request), user_agent=request.headers.get("user-agent", ""))
