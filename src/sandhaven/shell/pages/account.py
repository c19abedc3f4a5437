"""The account page: profile, personal API tokens, logging out everywhere, and
the person's own activity (the grains they opened)."""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from sandhaven.api.routes import RowId
from sandhaven.errors import RequestError
from sandhaven.identity.sessions import COOKIE_NAME
from sandhaven.identity.users import UserView
from sandhaven.shell.auth import current_user, services
from sandhaven.shell.render import redirect, render

router = APIRouter()


def _page(request: Request, user: UserView, status: int = 200, **ctx) -> Response:  # type: ignore[no-untyped-def]
    tokens = services(request).identity.tokens.list(user.id)
    form = ctx.pop("form", None) or {"name": user.name, "handle": user.handle,
                                     "picture_url": user.picture_url, "pronouns": user.pronouns}
    return render(request, "account.html", status=status, title="Account", section="account",
                  tokens=tokens, form=form, **ctx)


@router.get("/account")
def account(request: Request, user: UserView = Depends(current_user)) -> Response:
    return _page(request, user)


@router.post("/account/profile")
def save_profile(request: Request, user: UserView = Depends(current_user),
                 name: str = Form(""), handle: str = Form(""), picture_url: str = Form(""),
                 pronouns: str = Form("neutral")) -> Response:
    try:
        services(request).identity.users.update_profile(
            user.id, name=name, handle=handle, picture_url=picture_url, pronouns=pronouns)
    except RequestError as exc:
        form = {"name": name[:200], "handle": handle[:64], "picture_url": picture_url[:2000],
                "pronouns": pronouns[:16]}
        return _page(request, user, exc.status, error=str(exc), form=form)
    return redirect("/account", "profile")


@router.post("/account/tokens")
def create_token(request: Request, user: UserView = Depends(current_user),
                 label: str = Form("")) -> Response:
    try:
        _, token = services(request).identity.tokens.create(user.id, label)
    except RequestError as exc:
        return _page(request, user, exc.status, error=str(exc))
    return _page(request, user, new_token=token)


@router.post("/account/tokens/{token_id}/revoke")
def revoke_token(request: Request, token_id: RowId,
                 user: UserView = Depends(current_user)) -> Response:
    services(request).identity.tokens.revoke(user.id, token_id)
    return redirect("/account", "revoked")


@router.post("/account/logout-everywhere")
def logout_everywhere(request: Request, user: UserView = Depends(current_user)) -> Response:
    svc = services(request)
    svc.identity.sessions.end_all(user.id)
    if svc.grain_sessions is not None:
        svc.grain_sessions.revoke(user_id=user.id)  # every grain open on any device
    response = redirect("/login", "logged-out-all")
    response.delete_cookie(COOKIE_NAME, path="/")
    return response


@router.get("/account/activity")
def activity(request: Request, since: str = "", until: str = "",
             user: UserView = Depends(current_user)) -> Response:
    """The grains the user opened, newest first, from their rows of every grain's
    access log; ``since``/``until`` (YYYY-MM-DD, UTC, included) filter it, and a
    badly written date is a 400 with the form kept."""
    log = services(request).access_log
    assert log is not None
    error = None
    try:
        first = date.fromisoformat(since) if since else None
        last = date.fromisoformat(until) if until else None
    except ValueError:
        first = last = None
        error = "Dates are written YYYY-MM-DD."
    rows = [] if error else log.for_user(user.id, since=first, until=last)
    return render(request, "activity.html", status=400 if error else 200,
                  title="Your activity", section="account", rows=rows, since=since[:10],
                  until=until[:10], error=error)
