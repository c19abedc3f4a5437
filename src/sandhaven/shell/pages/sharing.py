"""Sharing in the shell: opening a sharing link (``/shared/<token>``) and the grain
page's share dialog (create a link, invite a person, change a role, revoke).

Opening a link: a visitor who is not logged in sees the grain as Anonymous User
(unless the admin turned that off: then they are sent to log in, and come back
to the link afterwards); a logged-in visitor chooses between opening it as
themselves (the grant is recorded and the grain joins their "Shared with me")
and opening it anonymously (while the admin allows it).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from sandhaven.api.routes import RowId
from sandhaven.errors import InvalidInput, MailError, RequestError
from sandhaven.grains.expiry import MAX_DAYS, parse_expiry
from sandhaven.grains.shares import Shares
from sandhaven.identity.users import UserView
from sandhaven.shell.auth import (
    client_of,
    current_user,
    login_session_id,
    optional_user,
    services,
)
from sandhaven.shell.pages.grains import grain_page_response
from sandhaven.shell.render import redirect, render
from sandhaven.store import utcnow

router = APIRouter()


def _shares(request: Request) -> Shares:
    shares = services(request).shares
    assert shares is not None
    return shares


@router.get("/shared/{token}")
def open_link(request: Request, token: str, anonymous: bool = False) -> Response:
    """404 for a token that never existed, 410 for a revoked one."""
    link = _shares(request).find_link(token)
    user = optional_user(request)
    svc = services(request)
    if user is not None and not anonymous:
        return render(request, "shared.html", title=link.grain_title, link=link,
                      session=None, anonymous_allowed=svc.runtime.get("sharing.anonymous"))
    if not svc.runtime.get("sharing.anonymous"):
        if user is None:
            return redirect("/login?" + urlencode({"next": f"/shared/{token}"}))
        return render(request, "error.html", status=403, title="Anonymous use is off",
                      heading="Anonymous use is off",
                      message="This server does not allow opening sharing links "
                              "anonymously. You can open this one as yourself.",
                      back=f"/shared/{token}", back_label=f"Open it as {user.name}")
    session = svc.grain_sessions.open_anonymous(link.share_id,  # type: ignore[union-attr]
                                                link.grain_id, client_of(request),
                                                login_session_id(request))
    return render(request, "shared.html", title=link.grain_title, link=link,
                  session=session)


@router.post("/shared/{token}")
def accept_link(request: Request, token: str,
                user: UserView = Depends(current_user)) -> Response:
    """Open the link as oneself: records the grant, then opens the grain."""
    grain_id = _shares(request).redeem(token, user.id)
    return redirect(f"/grains/{grain_id}")


def form_expiry(expires: str, expires_on: str) -> datetime | None:
    """The expiry the share dialog asks for (naive UTC): ``expires`` is empty
    (never), a number of days (1, 7, 30…) or ``date``, meaning the end of the day
    ``expires_on`` (YYYY-MM-DD, UTC). Raises InvalidInput."""
    expires = expires.strip()
    if not expires:
        return None
    if expires == "date":
        try:
            day = date.fromisoformat(expires_on.strip()[:10])
        except ValueError:
            raise InvalidInput(f"Expiry date {expires_on[:20]!r}: choose a date "
                               "(YYYY-MM-DD).") from None
        if day > date.max - timedelta(days=1):
            raise InvalidInput(f"Expiry date {day}: at most {MAX_DAYS} days ahead.")
        return parse_expiry(utcnow(), datetime.combine(day + timedelta(days=1), time()))
    if not expires.isdigit() or len(expires) > 5:
        raise InvalidInput(f"Expiry {expires[:20]!r}: choose one from the list.")
    return parse_expiry(utcnow(), expires_in_days=int(expires))


@router.post("/grains/{grain_id}/shares")
def new_link(request: Request, grain_id: str, user: UserView = Depends(current_user),
             role: str = Form(""), label: str = Form(""), expires: str = Form(""),
             expires_on: str = Form("")) -> Response:
    """Create a sharing link; its URL is shown once, on the page this answers."""
    shares = _shares(request)
    try:
        view, token = shares.create_link(user.id, grain_id, int(role), label,
                                         form_expiry(expires, expires_on))
    except ValueError:
        return grain_page_response(request, user, grain_id, 400,
                                   error="Choose a role from the list.", share_open=True)
    except RequestError as exc:
        if exc.status == 404:
            raise
        return grain_page_response(request, user, grain_id, exc.status, error=str(exc),
                                   share_open=True)
    return grain_page_response(request, user, grain_id, share_url=shares.link_url(token),
                               share_open=True)


@router.post("/grains/{grain_id}/invite")
def invite(request: Request, grain_id: str, user: UserView = Depends(current_user),
           email: str = Form(""), role: str = Form(""), message: str = Form("")) -> Response:
    try:
        _shares(request).invite(user.id, grain_id, email, int(role), message[:1000])
    except ValueError:
        return grain_page_response(request, user, grain_id, 400,
                                   error="Choose a role from the list.", share_open=True)
    except (RequestError, MailError) as exc:
        if exc.status == 404:
            raise
        return grain_page_response(request, user, grain_id, exc.status, error=str(exc),
                                   share_open=True)
    return redirect(f"/grains/{grain_id}", "shared")


@router.post("/grains/{grain_id}/access/{share_id}")
def change_access(request: Request, grain_id: str, share_id: RowId,
                  user: UserView = Depends(current_user), role: str = Form(""),
                  action: str = Form("role")) -> Response:
    shares = _shares(request)

    def apply() -> None:
        if action == "revoke":
            shares.revoke(user.id, grain_id, share_id)
        else:
            shares.change_role(user.id, grain_id, share_id, int(role))

    return _answer(request, user, grain_id, apply,
                   "share-revoked" if action == "revoke" else "share-changed")


def _answer(request: Request, user: UserView, grain_id: str, apply: Callable[[], object],
            done: str) -> Response:
    """Run a share-panel form's change; on bad input show the grain page again with
    the panel open and the reason (a role that is not a number is a 400)."""
    try:
        apply()
    except ValueError:
        return grain_page_response(request, user, grain_id, 400,
                                   error="Choose a role from the list.", share_open=True)
    except RequestError as exc:
        if exc.status == 404:
            raise
        return grain_page_response(request, user, grain_id, exc.status, error=str(exc),
                                   share_open=True)
    return redirect(f"/grains/{grain_id}", done)


@router.get("/grains/{grain_id}/access-log")
def access_log_page(request: Request, grain_id: str, person: str = "", since: str = "",
                    until: str = "", user: UserView = Depends(current_user)) -> Response:
    """The owner's view of the grain's access log; ``person``, ``since``, ``until``
    filter it, and the CSV link downloads what is shown."""
    svc = services(request)
    assert svc.access_log is not None and svc.grains is not None
    error = None
    try:
        first = date.fromisoformat(since) if since else None
        last = date.fromisoformat(until) if until else None
    except ValueError:
        first = last = None
        error = "Dates are written YYYY-MM-DD."
    rows = svc.access_log.for_grain(user.id, grain_id, person=person or None,
                                    since=first, until=last)
    people = {r.user_id: r.user_name for r in svc.access_log.for_grain(user.id, grain_id)
              if r.user_id}
    query = urlencode({k: v for k, v in (("person", person), ("since", since),
                                         ("until", until)) if v} | {"format": "csv"})
    return render(request, "access_log.html", status=400 if error else 200,
                  title="Access log", section="grains", grain=svc.grains.view(grain_id),
                  rows=rows, people=sorted(people.items(), key=lambda p: p[1]),
                  person=person, since=since, until=until, error=error,
                  csv_url=f"/api/v1/grains/{grain_id}/access-log?{query}")


@router.post("/grains/{grain_id}/request-access")
def request_access(request: Request, grain_id: str, user: UserView = Depends(current_user),
                   message: str = Form("")) -> Response:
    """Ask the owner; the answer is the same whether or not the grain exists."""
    services(request).access_requests.ask(user.id, grain_id, message[:1000])  # type: ignore[union-attr]
    return render(request, "request_access.html", title="Access requested",
                  section="grains", grain_id=grain_id[:40], sent=True)


@router.post("/grains/{grain_id}/access-requests/{request_id}")
def answer_request(request: Request, grain_id: str, request_id: RowId,
                   user: UserView = Depends(current_user), role: str = Form(""),
                   action: str = Form("grant")) -> Response:
    requests = services(request).access_requests
    assert requests is not None

    def apply() -> None:
        if action == "dismiss":
            requests.dismiss(user.id, grain_id, request_id)
        else:
            requests.grant(user.id, grain_id, request_id, int(role))

    return _answer(request, user, grain_id, apply,
                   "request-dismissed" if action == "dismiss" else "request-granted")
