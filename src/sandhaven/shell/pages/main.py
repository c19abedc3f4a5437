"""The shell's home and grains pages (the Apps page is ``apps.py``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from sandhaven.shell.auth import optional_user
from sandhaven.shell.render import redirect

router = APIRouter()


@router.get("/")
def home(request: Request) -> Response:
    return redirect("/grains" if optional_user(request) else "/login")
