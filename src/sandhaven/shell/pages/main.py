"""The shell's home and grains pages (the Apps page is ``apps.py``)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from sandhaven.identity.users import UserView
from sandhaven.shell.auth import current_user, optional_user
from sandhaven.shell.render import redirect, render

router = APIRouter()


@router.get("/")
def home(request: Request) -> Response:
    return redirect("/grains" if optional_user(request) else "/login")


@router.get("/grains")
def grains(request: Request, user: UserView = Depends(current_user)) -> Response:
    return render(request, "grains.html", title="Grains", section="grains", grains=[])

