"""``/api/v1/grains``: create, list, read, rename, trash, restore, purge, stop, log,
sessions, API tokens, sharing links and who has access."""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import PlainTextResponse

from sandhaven.api import schemas
from sandhaven.api.routes import RowId
from sandhaven.errors import InvalidInput, NotFound
from sandhaven.grains import Grains, GrainView
from sandhaven.grains.access_log import to_csv
from sandhaven.grains.expiry import parse_expiry
from sandhaven.grains.requests import AccessRequests
from sandhaven.grains.shares import Shares, ShareView
from sandhaven.identity.users import UserView
from sandhaven.shell.auth import client_of, current_user, login_session_id, services
from sandhaven.store import utcnow

router = APIRouter(tags=["grains"])
ERRORS = {code: {"model": schemas.ErrorBody}
          for code in (400, 401, 403, 404, 409, 410, 422, 429, 502)}


def _grains(request: Request) -> Grains:
    grains = services(request).grains
    assert grains is not None
    return grains


def _shares(request: Request) -> Shares:
    shares = services(request).shares
    assert shares is not None
    return shares


def _out(view: GrainView) -> schemas.Grain:
    return schemas.Grain(**view.api())


@router.post("/grains", response_model=schemas.Grain, status_code=201, responses=ERRORS)
def create_grain(body: schemas.GrainCreate, request: Request,
                 user: UserView = Depends(current_user)) -> schemas.Grain:
    """Create a grain by one of the app's actions; it starts when first opened."""
    return _out(_grains(request).create(user.id, body.app_id, body.action, body.title))


@router.get("/grains", response_model=list[schemas.Grain], responses=ERRORS)
def list_grains(request: Request, trash: bool = False, shared: bool = False,
                user: UserView = Depends(current_user)) -> list[schemas.Grain]:
    """The caller's grains (``?trash=true``: those in the trash; ``?shared=true``:
    grains others shared with the caller)."""
    if shared:
        return [_out(g) for g in _shares(request).shared_with(user.id)]
    return [_out(g) for g in _grains(request).list(user.id, trashed=trash)]


@router.get("/grains/{grain_id}", response_model=schemas.Grain, responses=ERRORS)
def get_grain(grain_id: str, request: Request,
              user: UserView = Depends(current_user)) -> schemas.Grain:
    """One of the caller's grains, or one shared with them (404 otherwise)."""
    try:
        return _out(_grains(request).get(user.id, grain_id))
    except NotFound:
        services(request).grain_sessions.access(user.id, grain_id)  # raises NotFound
        return _out(_grains(request).view(grain_id))


@router.patch("/grains/{grain_id}", response_model=schemas.Grain, responses=ERRORS)
def rename_grain(grain_id: str, body: schemas.GrainPatch, request: Request,
                 user: UserView = Depends(current_user)) -> schemas.Grain:
    return _out(_grains(request).rename(user.id, grain_id, body.title))


@router.delete("/grains/{grain_id}", response_model=schemas.Grain, responses=ERRORS)
async def trash_grain(grain_id: str, request: Request, forever: bool = False,
                      user: UserView = Depends(current_user)) -> Response | schemas.Grain:
    """Move to the trash (stops the grain). ``?forever=true`` on a grain already in
    the trash deletes it and its storage for good (204)."""
    if forever:
        await _grains(request).purge(user.id, grain_id)
        return Response(status_code=204)
    return _out(await _grains(request).trash(user.id, grain_id))


@router.post("/grains/{grain_id}/restore", response_model=schemas.Grain, responses=ERRORS)
def restore_grain(grain_id: str, request: Request,
                  user: UserView = Depends(current_user)) -> schemas.Grain:
    return _out(_grains(request).restore(user.id, grain_id))


@router.post("/grains/{grain_id}/stop", response_model=schemas.Grain, responses=ERRORS)
async def stop_grain(grain_id: str, request: Request,
                     user: UserView = Depends(current_user)) -> schemas.Grain:
    return _out(await _grains(request).stop(user.id, grain_id))


@router.get("/grains/{grain_id}/log", response_class=PlainTextResponse, responses=ERRORS)
def grain_log(grain_id: str, request: Request,
              user: UserView = Depends(current_user)) -> PlainTextResponse:
    """The grain's size-capped log (its standard output and error)."""
    return PlainTextResponse(_grains(request).read_log(user.id, grain_id))


@router.post("/grains/{grain_id}/sessions", response_model=schemas.GrainSession,
             status_code=201, responses=ERRORS)
def open_session(grain_id: str, request: Request,
                 user: UserView = Depends(current_user)) -> schemas.GrainSession:
    """Open a session: load ``url`` in a frame or tab; it sets the session host's
    cookie once and redirects to the app."""
    opened = services(request).grain_sessions.open(user.id, grain_id, client_of(request),
                                                   login_session_id(request))
    return schemas.GrainSession(url=opened.url, host=opened.host,
                                expires=opened.expires.isoformat() + "Z")


def _token(view) -> schemas.GrainToken:  # type: ignore[no-untyped-def]
    return schemas.GrainToken(
        id=view.id, label=view.label, role=view.role,
        created_at=view.created_at.isoformat() + "Z",
        last_used_at=view.last_used_at.isoformat() + "Z" if view.last_used_at else None)


@router.post("/grains/{grain_id}/api-tokens", response_model=schemas.GrainTokenCreated,
             status_code=201, responses=ERRORS)
def create_api_token(grain_id: str, body: schemas.GrainTokenCreate, request: Request,
                     user: UserView = Depends(current_user)) -> schemas.GrainTokenCreated:
    """A token for the API host (CalDAV, git, scripts) with a role; shown once."""
    tokens = services(request).grain_tokens
    view, token = tokens.create(user.id, grain_id, body.role, body.label)
    return schemas.GrainTokenCreated(**_token(view).model_dump(), token=token, url=tokens.url,
                                     webkey=f"{tokens.url}#{token}")


@router.get("/grains/{grain_id}/api-tokens", response_model=list[schemas.GrainToken],
            responses=ERRORS)
def list_api_tokens(grain_id: str, request: Request,
                    user: UserView = Depends(current_user)) -> list[schemas.GrainToken]:
    return [_token(v) for v in services(request).grain_tokens.list(user.id, grain_id)]


@router.delete("/grains/{grain_id}/api-tokens/{token_id}", status_code=204, responses=ERRORS)
def revoke_api_token(grain_id: str, token_id: RowId, request: Request,
                     user: UserView = Depends(current_user)) -> Response:
    services(request).grain_tokens.revoke(user.id, grain_id, token_id)
    return Response(status_code=204)


def _share(view: ShareView) -> schemas.ShareEntry:
    return schemas.ShareEntry(
        id=view.id, kind=view.kind, label=view.label, role=view.role,
        role_title=view.role_title,
        recipient={"id": view.recipient_id, "name": view.recipient_name or ""}
        if view.recipient_id else None,
        created_by={"id": view.created_by, "name": view.created_by_name},
        parent_id=view.parent_id, created_at=view.created_at.isoformat() + "Z",
        last_used_at=view.last_used_at.isoformat() + "Z" if view.last_used_at else None,
        can_change=view.can_change, permissions=list(view.permissions),
        follows_link=view.follows_link,
        expires_at=view.expires_at.isoformat() + "Z" if view.expires_at else None,
        expired=view.expired)


@router.post("/grains/{grain_id}/shares", response_model=schemas.ShareCreated,
             status_code=201, responses=ERRORS)
def create_share(grain_id: str, body: schemas.ShareCreate, request: Request,
                 user: UserView = Depends(current_user)) -> schemas.ShareCreated:
    """A sharing link granting a role (``url`` is shown only once), or with
    ``email`` an invitation: a user of this server gets the grant at once, anyone
    else a mail with a link of their own. A link may expire (``expires`` or
    ``expires_in_days``): from then on it grants nothing. 400: no such role, not
    an address, a bad or past expiry, an expiry on an invitation; 403: the role
    grants more than the caller holds; 404: no access; 502: the mail cannot be
    sent (nothing is kept)."""
    shares = _shares(request)
    wants_expiry = body.expires is not None or body.expires_in_days is not None
    if body.email is not None:
        if wants_expiry:
            raise InvalidInput("Fields 'expires' and 'expires_in_days' apply to sharing "
                               "links, not to invitations by address.")
        view = shares.invite(user.id, grain_id, body.email, body.role, body.message)
        return schemas.ShareCreated(**_share(view).model_dump(), url=None)
    expires_at = parse_expiry(utcnow(), body.expires, body.expires_in_days)
    view, token = shares.create_link(user.id, grain_id, body.role, body.label, expires_at)
    return schemas.ShareCreated(**_share(view).model_dump(), url=shares.link_url(token))


@router.get("/grains/{grain_id}/access", response_model=list[schemas.ShareEntry],
            responses=ERRORS)
def list_access(grain_id: str, request: Request,
                user: UserView = Depends(current_user)) -> list[schemas.ShareEntry]:
    """Who has access (links and people): all of it for the owner, the shares the
    caller created for anyone else."""
    return [_share(v) for v in _shares(request).list_access(user.id, grain_id)]


@router.patch("/grains/{grain_id}/access/{share_id}", response_model=schemas.ShareEntry,
              responses=ERRORS)
def change_access(grain_id: str, share_id: RowId, body: schemas.SharePatch, request: Request,
                  user: UserView = Depends(current_user)) -> schemas.ShareEntry:
    """Change a share's role; open sessions see it on their next request."""
    return _share(_shares(request).change_role(user.id, grain_id, share_id, body.role))


@router.delete("/grains/{grain_id}/access/{share_id}", status_code=204, responses=ERRORS)
def revoke_access(grain_id: str, share_id: RowId, request: Request,
                  user: UserView = Depends(current_user)) -> Response:
    """Revoke a share and everything re-shared from it, at once."""
    _shares(request).revoke(user.id, grain_id, share_id)
    return Response(status_code=204)


@router.get("/grains/{grain_id}/access-log", response_model=list[schemas.AccessLogRow],
            responses={**ERRORS, 200: {"content": {"text/csv": {}}}})
def access_log(grain_id: str, request: Request, person: str | None = None,
               since: date | None = None, until: date | None = None, format: str = "json",
               user: UserView = Depends(current_user)) -> Response | list[schemas.AccessLogRow]:
    """Who opened the grain, newest first (owner only: 403 for others with access).
    ``person``: a user ID; ``since``/``until``: days (YYYY-MM-DD, UTC, included);
    ``format=csv`` for a download."""
    log = services(request).access_log
    assert log is not None
    rows = log.for_grain(user.id, grain_id, person=person, since=since, until=until)
    if format == "csv":
        return Response(to_csv(rows), media_type="text/csv; charset=utf-8", headers={
            "Content-Disposition": f'attachment; filename="access-log-{grain_id}.csv"'})
    if format != "json":
        raise InvalidInput(f"Parameter 'format' has value {format[:20]!r}: use json or csv.")
    return [schemas.AccessLogRow(**r.api()) for r in rows]  # type: ignore[arg-type]


@router.get("/me/activity", response_model=list[schemas.AccessLogRow], responses=ERRORS)
def my_activity(request: Request, since: date | None = None, until: date | None = None,
                user: UserView = Depends(current_user)) -> list[schemas.AccessLogRow]:
    """The caller's own rows in every grain's access log, newest first.
    ``since``/``until``: days (YYYY-MM-DD, UTC, included). A grain the caller
    cannot reach any more has an empty ``grain_title``."""
    log = services(request).access_log
    assert log is not None
    return [schemas.AccessLogRow(**r.api())  # type: ignore[arg-type]
            for r in log.for_user(user.id, since=since, until=until)]


def _requests(request: Request) -> AccessRequests:
    found = services(request).access_requests
    assert found is not None
    return found


@router.post("/grains/{grain_id}/access-requests", status_code=202, responses=ERRORS)
def ask_access(grain_id: str, body: schemas.AccessRequestCreate, request: Request,
               user: UserView = Depends(current_user)) -> dict[str, str]:
    """Ask the owner for access. The answer is the same whether or not the grain
    exists or you already have access; 429 when asked too often."""
    _requests(request).ask(user.id, grain_id, body.message)
    return {"status": "sent"}


@router.get("/grains/{grain_id}/access-requests",
            response_model=list[schemas.AccessRequestEntry], responses=ERRORS)
def list_access_requests(grain_id: str, request: Request,
                         user: UserView = Depends(current_user)
                         ) -> list[schemas.AccessRequestEntry]:
    """Open requests (owner only)."""
    return [schemas.AccessRequestEntry(
        id=r.id, user={"id": r.user_id, "name": r.user_name, "email": r.user_email},
        message=r.message, created_at=r.created_at.isoformat() + "Z")
        for r in _requests(request).pending(user.id, grain_id)]


@router.post("/grains/{grain_id}/access-requests/{request_id}/grant",
             response_model=schemas.ShareEntry, status_code=201, responses=ERRORS)
def grant_access_request(grain_id: str, request_id: RowId, body: schemas.AccessRequestGrant,
                         request: Request, user: UserView = Depends(current_user)
                         ) -> schemas.ShareEntry:
    """Grant the asker a role (owner only); the request closes."""
    return _share(_requests(request).grant(user.id, grain_id, request_id, body.role))


@router.delete("/grains/{grain_id}/access-requests/{request_id}", status_code=204,
               responses=ERRORS)
def dismiss_access_request(grain_id: str, request_id: RowId, request: Request,
                           user: UserView = Depends(current_user)) -> Response:
    _requests(request).dismiss(user.id, grain_id, request_id)
    return Response(status_code=204)
