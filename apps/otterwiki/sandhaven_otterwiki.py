"""The WSGI application gunicorn serves inside the grain: An Otter Wiki behind a
small layer that speaks the platform's identity headers (docs/developing/otterwiki.md).

An Otter Wiki runs with ``AUTH_METHOD = "PROXY_HEADER"``: it trusts three request
headers for the user's name, e-mail address and roles, and keeps no accounts of
its own. :class:`PlatformIdentity` sets those headers from the ones the platform
adds to every request, after dropping any a client sent:

* name: ``X-Sandstorm-Username`` (percent-encoded UTF-8), decoded;
* e-mail: ``<X-Sandstorm-User-Id>@users.sandhaven.invalid`` (``anonymous@…`` for
  visitors without one) — git needs an address for the commit author, and the
  platform gives apps none;
* roles: ``READ`` for everyone who reaches the grain, ``WRITE`` and ``UPLOAD``
  with the ``edit`` permission, ``ADMIN`` with ``administer``.

It also makes the wiki's session cookie (which carries the CSRF token of its
forms) usable inside the shell's frame: the frame is another site than the
shell, so a ``SameSite=Lax`` cookie would never come back and every save would
fail its CSRF check. Over HTTPS, and on ``*.localhost`` (which browsers treat as
secure), the cookie becomes ``Secure; SameSite=None; Partitioned``, the same
choice the platform makes for its own session cookie.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote

NAME, EMAIL, ROLES = "HTTP_X_OTTERWIKI_NAME", "HTTP_X_OTTERWIKI_EMAIL", "HTTP_X_OTTERWIKI_ROLES"
EMAIL_DOMAIN = "users.sandhaven.invalid"  # .invalid: never a deliverable address
_USER_ID = re.compile(r"[0-9a-f]{32}")

Environ = dict[str, Any]
StartResponse = Callable[..., Any]


def roles(permissions: str) -> str:
    """Otter Wiki roles for the comma-joined ``X-Sandstorm-Permissions`` value."""
    held = {p.strip() for p in permissions.split(",")}
    granted = ["READ"]
    if "edit" in held:
        granted += ["WRITE", "UPLOAD"]
    if "administer" in held:
        granted.append("ADMIN")
    return ",".join(granted)


def _secure_origin(environ: Environ) -> bool:
    host = environ.get("HTTP_HOST", "").rsplit(":", 1)[0].lower()
    return (environ.get("wsgi.url_scheme") == "https" or host == "localhost"
            or host.endswith(".localhost"))


def frame_cookie(value: str) -> str:
    """A ``Set-Cookie`` value rewritten to be sent back from inside a cross-site
    frame: ``Secure; SameSite=None; Partitioned``, replacing any SameSite given."""
    parts = [p for p in value.split(";")
             if p.strip().lower().split("=")[0] not in ("samesite", "secure", "partitioned")]
    return ";".join(parts) + "; Secure; SameSite=None; Partitioned"


class PlatformIdentity:
    """WSGI middleware: platform identity headers → Otter Wiki's proxy headers."""

    def __init__(self, app: Callable[[Environ, StartResponse], Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        for key in (NAME, EMAIL, ROLES):
            environ.pop(key, None)
        name = unquote(environ.get("HTTP_X_SANDSTORM_USERNAME", ""), errors="replace")
        user_id = environ.get("HTTP_X_SANDSTORM_USER_ID", "")
        environ[NAME] = name.strip() or "Anonymous User"
        environ[EMAIL] = (f"{user_id}@{EMAIL_DOMAIN}" if _USER_ID.fullmatch(user_id)
                          else f"anonymous@{EMAIL_DOMAIN}")
        environ[ROLES] = roles(environ.get("HTTP_X_SANDSTORM_PERMISSIONS", ""))
        if not _secure_origin(environ):
            return self.app(environ, start_response)

        def framed(status: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
            headers = [(k, frame_cookie(v) if k.lower() == "set-cookie" else v)
                       for k, v in headers]
            return start_response(status, headers, *exc)

        return self.app(environ, framed)


# Imported last: Otter Wiki reads its configuration (set by launcher.py in the
# environment) and opens the repository when its server module loads.
from otterwiki.server import app as otterwiki  # noqa: E402

app = PlatformIdentity(otterwiki)
