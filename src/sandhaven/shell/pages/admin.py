"""Admin pages: users (make admin, suspend, delete), invitations, server settings."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from sandhaven.api.routes import RowId
from sandhaven.errors import InvalidInput, MailError, RequestError
from sandhaven.identity.users import UserView
from sandhaven.mail import OutgoingMail
from sandhaven.shell.auth import admin_user, services
from sandhaven.shell.render import redirect, render

router = APIRouter()
EDITABLE = ("signup_policy", "smtp.host", "smtp.port", "smtp.security", "smtp.user",
            "smtp.password", "smtp.from_address", "sharing.anonymous")


def _users_page(request: Request, status: int = 200, **ctx) -> Response:  # type: ignore[no-untyped-def]
    svc = services(request)
    return render(request, "admin.html", status=status, title="Admin", section="admin",
                  users=svc.identity.users.list(), invites=svc.identity.invites.list(),
                  signup_policy=svc.runtime.effective().signup_policy, **ctx)


@router.get("/admin")
def admin(request: Request, user: UserView = Depends(admin_user)) -> Response:
    return _users_page(request)


@router.get("/admin/users/{user_id}/delete")
def confirm_delete(request: Request, user_id: str,
                   user: UserView = Depends(admin_user)) -> Response:
    target = services(request).identity.users.get(user_id)
    return render(request, "confirm_delete.html", title="Delete user", section="admin",
                  target=target)


@router.post("/admin/users/{user_id}")
async def change_user(request: Request, user_id: str,
                      user: UserView = Depends(admin_user)) -> Response:
    form = await request.form()
    action = str(form.get("action", ""))
    users = services(request).identity.users
    actions = {
        "admin": lambda: users.set_admin(user.id, user_id, True),
        "unadmin": lambda: users.set_admin(user.id, user_id, False),
        "suspend": lambda: users.set_suspended(user.id, user_id, True),
        "unsuspend": lambda: users.set_suspended(user.id, user_id, False),
        "delete": lambda: users.delete(user.id, user_id),
    }
    if action not in actions:
        raise InvalidInput(f"Unknown action {action[:40]!r}.")
    try:
        actions[action]()
    except RequestError as exc:
        if exc.status == 404:
            raise
        return _users_page(request, exc.status, error=str(exc))
    return redirect("/admin", "deleted" if action == "delete" else "user")


@router.post("/admin/invites")
async def invite(request: Request, user: UserView = Depends(admin_user)) -> Response:
    form = await request.form()
    email = str(form.get("email", "")).strip()
    note = str(form.get("note", ""))
    svc = services(request)
    try:
        view, token = svc.identity.invite(user.id, email or None, note)
    except (RequestError, MailError) as exc:
        return _users_page(request, exc.status, error=str(exc))
    if view.email:
        return redirect("/admin", "invite-sent")
    return _users_page(request, invite_link=f"{svc.settings.base_url}/invite/{token}")


@router.post("/admin/invites/{invite_id}/revoke")
def revoke_invite(request: Request, invite_id: RowId,
                  user: UserView = Depends(admin_user)) -> Response:
    services(request).identity.invites.revoke(user.id, invite_id)
    return redirect("/admin", "invite-revoked")


@router.get("/admin/settings")
def settings_page(request: Request, user: UserView = Depends(admin_user)) -> Response:
    return render(request, "admin_settings.html", title="Settings", section="admin",
                  s=services(request).runtime.effective())


@router.post("/admin/settings")
async def save_settings(request: Request, user: UserView = Depends(admin_user)) -> Response:
    form = await request.form()
    svc = services(request)
    changes = {k: str(form[k]) for k in EDITABLE if k in form}
    if not changes.get("smtp.password"):
        changes.pop("smtp.password", None)  # empty means keep the stored password
    try:
        svc.runtime.save(changes)
    except RequestError as exc:
        return render(request, "admin_settings.html", status=exc.status, title="Settings",
                      section="admin", s=svc.runtime.effective(), error=str(exc))
    return redirect("/admin/settings", "settings")


@router.post("/admin/settings/test-mail")
def test_mail(request: Request, user: UserView = Depends(admin_user)) -> Response:
    svc = services(request)
    try:
        svc.mailer.send(OutgoingMail(user.email, "Sandhaven test mail",
                                     "Outgoing mail from your Sandhaven server works.\n"))
    except MailError as exc:
        return render(request, "admin_settings.html", status=exc.status, title="Settings",
                      section="admin", s=svc.runtime.effective(), error=str(exc))
    return redirect("/admin/settings", "test-mail")
