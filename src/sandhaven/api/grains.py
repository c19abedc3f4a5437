"""``/api/v1/grains``: create, list, read, rename, trash, restore, purge, stop, log."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import PlainTextResponse

from sandhaven.api import schemas
from sandhaven.grains import Grains, GrainView
from sandhaven.identity.users import UserView
from sandhaven.shell.auth import current_user, services

router = APIRouter(tags=["grains"])
ERRORS = {code: {"model": schemas.ErrorBody} for code in (400, 401, 403, 404, 409, 422)}


def _grains(request: Request) -> Grains:
    grains = services(request).grains
    assert grains is not None
    return grains


def _out(view: GrainView) -> schemas.Grain:
    return schemas.Grain(**view.api())


@router.post("/grains", response_model=schemas.Grain, status_code=201, responses=ERRORS)
def create_grain(body: schemas.GrainCreate, request: Request,
                 user: UserView = Depends(current_user)) -> schemas.Grain:
    """Create a grain by one of the app's actions; it starts when first opened."""
    return _out(_grains(request).create(user.id, body.app_id, body.action, body.title))


@router.get("/grains", response_model=list[schemas.Grain], responses=ERRORS)
def list_grains(request: Request, trash: bool = False,
                user: UserView = Depends(current_user)) -> list[schemas.Grain]:
    """The caller's grains (``?trash=true``: those in the trash)."""
    return [_out(g) for g in _grains(request).list(user.id, trashed=trash)]


@router.get("/grains/{grain_id}", response_model=schemas.Grain, responses=ERRORS)
def get_grain(grain_id: str, request: Request,
              user: UserView = Depends(current_user)) -> schemas.Grain:
    return _out(_grains(request).get(user.id, grain_id))


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
