"""``/identicon/<32 hex>.svg``: default user pictures, public (apps in grains show
them), cacheable forever (the picture never changes for a key)."""

from __future__ import annotations

import re

from fastapi import APIRouter
from fastapi.responses import Response

from sandhaven.errors import NotFound
from sandhaven.identity.identicon import identicon_svg

router = APIRouter()
_KEY = re.compile(r"[0-9a-f]{32}")


@router.get("/identicon/{key}.svg")
def identicon(key: str) -> Response:
    if not _KEY.fullmatch(key):
        raise NotFound("No such picture.")
    return Response(identicon_svg(key), media_type="image/svg+xml", headers={
        "Cache-Control": "public, max-age=31536000, immutable",
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox",
        "Cross-Origin-Resource-Policy": "cross-origin",
    })
