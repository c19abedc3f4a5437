"""``/api/v1`` routes for accounts: the caller, personal tokens, users, invitations,
server settings. Every route goes through the same services as the shell."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response

from sandhaven.api import schemas
from sandhaven.identity.users import UserView
from sandhaven.shell.auth import admin_user, client_ip, current_user, services

router = APIRouter()
# Row IDs are 64-bit integers in the store; a larger number is simply not found.
RowId = Annotated[int, Path(ge=1, le=2**63 - 1)]
ERRORS = {code: {"model": schemas.ErrorBody}
          for code in (400, 401, 403, 404, 409, 410, 413, 422, 429, 502)}


def _me(u: UserView) -> schemas.Me:
    return schemas.Me(id=u.id, email=u.email, name=u.name, is_admin=u.is_admin, handle=u.handle,
                      picture_url=u.picture_url, pronouns=u.pronouns)


def _user(u: UserView) -> schemas.User:
    return schemas.User(id=u.id, email=u.email, name=u.name, is_admin=u.is_admin,
                        suspended=u.suspended, created_at=u.created_at,
                        last_login_at=u.last_login_at)


@router.get("/me", response_model=schemas.Me, responses=ERRORS, tags=["account"])
def get_me(user: UserView = Depends(current_user)) -> schemas.Me:
    """The caller."""
    return _me(user)


@router.patch("/me", response_model=schemas.Me, responses=ERRORS, tags=["account"])
def patch_me(body: schemas.ProfilePatch, request: Request,
             user: UserView = Depends(current_user)) -> schemas.Me:
    """Change the caller's name, handle, picture or pronouns (all or nothing)."""
    return _me(services(request).identity.users.update_profile(user.id, **body.model_dump()))


@router.get("/me/tokens", response_model=list[schemas.Token], responses=ERRORS,
            tags=["account"])
def list_tokens(request: Request, user: UserView = Depends(current_user)) -> list[schemas.Token]:
    return [schemas.Token(**t.__dict__) for t in services(request).identity.tokens.list(user.id)]


@router.post("/me/tokens", response_model=schemas.TokenCreated, status_code=201,
             responses=ERRORS, tags=["account"])
def create_token(body: schemas.TokenCreate, request: Request,
                 user: UserView = Depends(current_user)) -> schemas.TokenCreated:
    """A new personal API token; the secret is in this answer only."""
    view, token = services(request).identity.tokens.create(user.id, body.label)
    return schemas.TokenCreated(**view.__dict__, token=token)


@router.delete("/me/tokens/{token_id}", status_code=204, responses=ERRORS, tags=["account"])
def revoke_token(token_id: RowId, request: Request,
                 user: UserView = Depends(current_user)) -> Response:
    services(request).identity.tokens.revoke(user.id, token_id)
    return Response(status_code=204)


@router.get("/users", response_model=list[schemas.User], responses=ERRORS, tags=["admin"])
def list_users(request: Request, admin: UserView = Depends(admin_user)) -> list[schemas.User]:
    return [_user(u) for u in services(request).identity.users.list()]


@router.post("/users", response_model=schemas.User, status_code=201, responses=ERRORS,
             tags=["admin"])
def create_user(body: schemas.UserCreate, request: Request,
                admin: UserView = Depends(admin_user)) -> schemas.User:
    return _user(services(request).identity.users.create(body.email, body.name,
                                                         is_admin=body.is_admin))


@router.patch("/users/{user_id}", response_model=schemas.User, responses=ERRORS,
              tags=["admin"])
def patch_user(user_id: str, body: schemas.UserPatch, request: Request,
               admin: UserView = Depends(admin_user)) -> schemas.User:
    """Make or unmake admin; suspend (logs the user out everywhere at once) or unsuspend."""
    users = services(request).identity.users
    result = users.get(user_id)
    if body.is_admin is not None:
        result = users.set_admin(admin.id, user_id, body.is_admin)
    if body.suspended is not None:
        result = users.set_suspended(admin.id, user_id, body.suspended)
    return _user(result)


@router.delete("/users/{user_id}", status_code=204, responses=ERRORS, tags=["admin"])
def delete_user(user_id: str, request: Request, admin: UserView = Depends(admin_user)
                ) -> Response:
    services(request).identity.users.delete(admin.id, user_id)
    return Response(status_code=204)


@router.get("/invites", response_model=list[schemas.Invite], responses=ERRORS, tags=["admin"])
def list_invites(request: Request, admin: UserView = Depends(admin_user)
                 ) -> list[schemas.Invite]:
    return [schemas.Invite(id=i.id, email=i.email, note=i.note, created_at=i.created_at,
                           expires_at=i.expires_at, state=i.state)
            for i in services(request).identity.invites.list()]


@router.post("/invites", response_model=schemas.InviteCreated, status_code=201,
             responses=ERRORS, tags=["admin"])
def create_invite(body: schemas.InviteCreate, request: Request,
                  admin: UserView = Depends(admin_user)) -> schemas.InviteCreated:
    """Invite an address (a mail is sent) or, without ``email``, make a single-use link."""
    svc = services(request)
    view, token = svc.identity.invite(admin.id, body.email, body.note)
    return schemas.InviteCreated(id=view.id, email=view.email, note=view.note,
                                 created_at=view.created_at, expires_at=view.expires_at,
                                 state=view.state, url=f"{svc.settings.base_url}/invite/{token}")


@router.delete("/invites/{invite_id}", status_code=204, responses=ERRORS, tags=["admin"])
def revoke_invite(invite_id: RowId, request: Request, admin: UserView = Depends(admin_user)
                  ) -> Response:
    services(request).identity.invites.revoke(admin.id, invite_id)
    return Response(status_code=204)


def _settings(request: Request) -> schemas.ServerSettings:
    s = services(request).runtime.effective()
    return schemas.ServerSettings(
        signup_policy=s.signup_policy, smtp_host=s.get("smtp.host"), smtp_port=s.get("smtp.port"),
        smtp_security=s.get("smtp.security"), smtp_user=s.get("smtp.user"),
        smtp_from_address=s.get("smtp.from_address"),
        smtp_password_set=bool(s.get("smtp.password")),
        sharing_anonymous=s.get("sharing.anonymous"))


@router.get("/admin/settings", response_model=schemas.ServerSettings, responses=ERRORS,
            tags=["admin"])
def get_settings(request: Request, admin: UserView = Depends(admin_user)
                 ) -> schemas.ServerSettings:
    return _settings(request)


@router.patch("/admin/settings", response_model=schemas.ServerSettings, responses=ERRORS,
              tags=["admin"])
def patch_settings(body: schemas.ServerSettingsPatch, request: Request,
                   admin: UserView = Depends(admin_user)) -> schemas.ServerSettings:
    """Change signup policy, SMTP and anonymous sharing settings; all or nothing."""
    changes = {k.replace("smtp_", "smtp.", 1).replace("sharing_", "sharing.", 1): v
               for k, v in body.model_dump(exclude_none=True).items()}
    services(request).runtime.save(changes)
    return _settings(request)


@router.post("/login/email", status_code=202, responses=ERRORS, tags=["login"])
def request_login(body: schemas.LoginRequest, request: Request) -> dict[str, str]:
    """Mail a login link and code to an address (same answer whether or not it has an
    account)."""
    services(request).identity.email_login.request(body.email, client_ip(request))
    return {"status": "sent"}
