"""Runs Radicale inside a grain (see docs/developing/radicale.md).

Usage: /usr/bin/python3 -I /opt/app/launcher.py, with PORT (the manifest's port)
and RADICALE_DIR (the collections, under /var) in the environment. The same
command creates a grain and continues it.

One threaded WSGI server on 127.0.0.1:PORT serves Radicale (from lib/ next to
this file) behind a small front that

- refuses with 403 every request that could change data (any method but GET,
  HEAD, OPTIONS, PROPFIND and REPORT) unless X-Sandstorm-Permissions holds
  ``edit`` — so viewers, in the browser or through a viewer API token, can read
  and never write, whatever Radicale's own rights say;
- makes every request Radicale's one user ``grain`` (X-Remote-User): the
  platform has already decided who may reach the grain and with which role, and
  everyone who does sees the same collections at the same paths
  (/grain/calendar/, /grain/contacts/), so one grain is one calendar and one
  address book for all its users;
- answers ``GET /`` with the grain's overview: its events and contacts, and how
  to connect a calendar or contacts app through an API token.
"""

from __future__ import annotations

import contextvars
import html
import io
import json
import os
import signal
import socket
import socketserver
import sys
import threading
import wsgiref.simple_server
import wsgiref.util
from collections.abc import Callable, Iterable
from datetime import date, datetime
from urllib.parse import unquote

# The package tree is read-only and its modules were compiled at build time.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

import radicale  # noqa: E402  (after the path to the bundled lib)
import radicale.server  # noqa: E402
import radicale.storage  # noqa: E402
from radicale import config, log  # noqa: E402
from radicale.rights import owner_only  # noqa: E402

OWNER = "grain"
HOST = "127.0.0.1"
# Methods that only read (RFC 4918 PROPFIND, RFC 3253 REPORT); anything else —
# PUT, DELETE, MKCOL, MKCALENDAR, PROPPATCH, MOVE, COPY, POST, and methods not
# known today — needs the `edit` permission.
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PROPFIND", "REPORT"})
# The grain's calendar and address book, made with the principal on first start.
PREDEFINED = {
    "calendar": {"tag": "VCALENDAR", "D:displayname": "Calendar",
                 "C:supported-calendar-component-set": "VEVENT,VTODO,VJOURNAL"},
    "contacts": {"tag": "VADDRESSBOOK", "D:displayname": "Contacts"},
}
CLIENT_TIMEOUT = 60.0  # seconds a connection may stay silent
LISTED = 500  # events or contacts shown per collection on the overview page

StartResponse = Callable[..., object]
# Whether the request being served may write: set by the front for each request
# (a thread per connection, so one value per thread), read by GrainRights.
EDITING: contextvars.ContextVar[bool] = contextvars.ContextVar("editing", default=False)


def log_line(message: str) -> None:
    sys.stderr.write(f"launcher: {message}\n")
    sys.stderr.flush()


class LauncherError(Exception):
    """A setting or a start step is wrong; the message is one line for the log."""


class GrainRights(owner_only.Rights):
    """Radicale's rights plugin for the grain: ``owner_only``'s rights without any
    write right while the request's user lacks ``edit``. A second wall behind the
    front, and what makes Radicale report read-only privileges
    (``current-user-privilege-set``) to viewers' clients."""

    def authorization(self, user: str, user_groups: set, path: str) -> str:
        granted = super().authorization(user, user_groups, path)
        return granted if EDITING.get() else "".join(c for c in granted if c in "Rrif")


def radicale_config(folder: str) -> config.Configuration:
    """Radicale's configuration: the defaults, no config file, and these values."""
    configuration = config.load()
    configuration.update({
        "auth": {"type": "http_x_remote_user"},
        "rights": {"type": GrainRights},
        "storage": {"filesystem_folder": folder,
                    "predefined_collections": json.dumps(PREDEFINED)},
        # The web page's login probe must send the session cookie, and then finds
        # itself logged in as the grain's user.
        "web": {"type": "internal", "prefer_browser_login": "True"},
        "sharing": {"type": "none"},
        "logging": {"level": "warning"},
    }, "Sandhaven launcher", privileged=True)
    return configuration


def may_edit(environ: dict) -> bool:
    granted = environ.get("HTTP_X_SANDSTORM_PERMISSIONS", "")
    return "edit" in (p.strip() for p in granted.split(","))


def _when(value: object) -> str:
    if isinstance(value, datetime):
        text = value.strftime("%Y-%m-%d %H:%M")
        return f"{text} {value.tzname()}" if value.tzinfo and value.tzname() else text
    if isinstance(value, date):
        return value.isoformat()
    return ""


def _text(component: object, name: str) -> str:
    prop = getattr(component, name, None)
    value = getattr(prop, "value", "")
    return value if isinstance(value, str) else str(value)


class Collection:
    """What the overview shows of one collection: its path, name, kind and lines
    (``(when, summary)`` for events, ``("", name)`` for contacts)."""

    def __init__(self, path: str, name: str, kind: str, lines: list[tuple[str, str]]) -> None:
        self.path, self.name, self.kind, self.lines = path, name, kind, lines


def read_collections(storage: radicale.storage.BaseStorage) -> list[Collection]:
    """The grain user's collections with their events or contacts, sorted."""
    found = []
    with storage.acquire_lock("r", OWNER):
        for coll in storage.discover(f"/{OWNER}/", depth="1"):
            if not isinstance(coll, radicale.storage.BaseCollection) or coll.is_principal:
                continue
            tag = coll.tag
            lines: list[tuple[str, str]] = []
            for item in coll.get_all():
                vobj = item.vobject_item
                if tag == "VCALENDAR":
                    for event in getattr(vobj, "vevent_list", []):
                        start = getattr(getattr(event, "dtstart", None), "value", None)
                        lines.append((_when(start), _text(event, "summary") or "(no title)"))
                elif tag == "VADDRESSBOOK":
                    lines.append(("", _text(vobj, "fn") or "(no name)"))
            lines.sort()
            name = coll.get_meta("D:displayname") or coll.path.rsplit("/", 1)[-1]
            found.append(Collection(f"/{coll.path}/", name, tag, lines))
    return sorted(found, key=lambda c: c.path)


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Calendar and contacts</title>
<style>
body {{ font: 16px/1.5 system-ui, sans-serif; margin: 1.5rem auto; max-width: 46rem;
       padding: 0 1rem; color: #222; }}
h1 {{ font-size: 1.5rem; }} h2 {{ font-size: 1.2rem; margin-top: 2rem; }}
code {{ background: #f2f2f2; padding: 0 .2em; overflow-wrap: anywhere; }}
ul.items li {{ margin: .2rem 0; }} .when {{ color: #555; margin-right: .6em; }}
.muted {{ color: #666; }}
</style></head>
<body>
<h1>Calendar and contacts</h1>
<p>Hello, {user}. {role}</p>
{collections}
<h2 id="connect">Connect your calendar or contacts app</h2>
<ol>
<li>On this grain's page in Sandhaven, open <strong>API token</strong> (above this
frame), choose a role — <em>viewer</em> for an app that should only read — and a
label, and create the token. It is shown once, as <code>API-URL#TOKEN</code>.</li>
<li>In your app (Thunderbird, Evolution, GNOME Calendar, DAVx⁵, Apple Calendar…),
add a CalDAV or CardDAV account:
<ul>
<li>server: <code>API-URL/</code> — apps that discover find both collections there;</li>
<li>or the collections directly: calendar <code>API-URL/{owner}/calendar/</code>,
contacts <code>API-URL/{owner}/contacts/</code>;</li>
<li>user name: anything (for example your name); password: <code>TOKEN</code>.</li>
</ul></li>
</ol>
<p>Collections: {paths}. Radicale's own <a href="/.web/">web page</a> lists and
manages them (new calendars, colours, import and export); the addresses it shows
are this frame's, which work only here — apps use the API URL.</p>
</body></html>
"""


def overview(collections: list[Collection], user: str, editor: bool) -> bytes:
    """The overview page (UTF-8 HTML); every value from the grain's data is escaped."""
    parts = []
    for coll in collections:
        title = html.escape(coll.name)
        if coll.kind == "VCALENDAR":
            heading, empty = f'{title} <small class="muted">calendar</small>', "No events yet."
        elif coll.kind == "VADDRESSBOOK":
            heading, empty = (f'{title} <small class="muted">address book</small>',
                              "No contacts yet.")
        else:
            continue
        parts.append(f"<h2>{heading}</h2>")
        if not coll.lines:
            parts.append(f'<p class="muted">{empty}</p>')
            continue
        parts.append('<ul class="items">')
        for when, text in coll.lines[:LISTED]:
            stamp = f'<span class="when">{html.escape(when)}</span>' if when else ""
            parts.append(f"<li>{stamp}{html.escape(text)}</li>")
        parts.append("</ul>")
        if len(coll.lines) > LISTED:
            parts.append(f'<p class="muted">and {len(coll.lines) - LISTED} more.</p>')
    role = ("You can change this calendar and address book." if editor else
            "You can view this calendar and address book; changes are refused.")
    paths = ", ".join(f"<code>{html.escape(c.path)}</code>" for c in collections) or "none"
    return PAGE.format(user=html.escape(user), role=role, collections="\n".join(parts),
                       owner=OWNER, paths=paths).encode()


def _plain(start_response: StartResponse, status: str, text: str) -> list[bytes]:
    body = text.encode()
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"),
                            ("Content-Length", str(len(body)))])
    return [body]


class Front:
    """The WSGI front of Radicale described in the module docstring."""

    def __init__(self, radicale_app: Callable, storage: radicale.storage.BaseStorage) -> None:
        self.radicale_app = radicale_app
        self.storage = storage

    def __call__(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "")
        path = environ.get("PATH_INFO", "")
        editor = may_edit(environ)
        if path == "/.sharing" or path.startswith("/.sharing/"):
            # Radicale's own sharing (links and maps of collections to other
            # Radicale users) stays off: sharing a grain is the platform's job. Its
            # web page reads 404 as "sharing disabled", for viewers too.
            return _plain(start_response, "404 Not Found", "Sharing is done in Sandhaven.\n")
        if method not in READ_METHODS and not editor:
            return _plain(start_response, "403 Forbidden",
                          "Viewers cannot change this calendar or address book.\n")
        # Whoever the platform let in is Radicale's one user; nothing the client
        # says about users or a base path is believed.
        for key in ("HTTP_AUTHORIZATION", "HTTP_X_REMOTE_USER", "REMOTE_USER",
                    "HTTP_X_SCRIPT_NAME"):
            environ.pop(key, None)
        environ["HTTP_X_REMOTE_USER"] = OWNER
        if method in ("GET", "HEAD") and path in ("", "/"):
            user = unquote(environ.get("HTTP_X_SANDSTORM_USERNAME", ""), errors="replace")
            body = overview(read_collections(self.storage), user or "Anonymous User", editor)
            start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                                      ("Content-Length", str(len(body))),
                                      ("Cache-Control", "no-store")])
            return [] if method == "HEAD" else [body]
        editing = EDITING.set(editor)
        try:
            return self.radicale_app(environ, start_response)
        finally:
            EDITING.reset(editing)


def make_principal(radicale_app: Callable) -> None:
    """Ask Radicale for the grain user's principal once, which creates it and the
    predefined collections on the first start (and loads every module before the
    first real request). Raises LauncherError when Radicale does not answer 207."""
    environ: dict = {"REQUEST_METHOD": "PROPFIND", "PATH_INFO": f"/{OWNER}/",
                     "HTTP_DEPTH": "1", "HTTP_X_REMOTE_USER": OWNER, "CONTENT_LENGTH": "0",
                     "wsgi.input": io.BytesIO()}
    wsgiref.util.setup_testing_defaults(environ)
    statuses = []
    editing = EDITING.set(True)
    try:
        body = radicale_app(environ, lambda status, headers, exc_info=None:
                            statuses.append(status))
        for _ in body:
            pass
    finally:
        EDITING.reset(editing)
    if not statuses or not statuses[0].startswith("207"):
        raise LauncherError(f"Radicale answered {statuses} for the grain's principal.")


class Server(socketserver.ThreadingMixIn, wsgiref.simple_server.WSGIServer):
    """A thread per connection (Radicale's own built-in server does the same);
    closing waits for requests in flight."""

    daemon_threads = False
    block_on_close = True

    def server_bind(self) -> None:
        # HTTPServer would look up the address's host name; there is no DNS here.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "localhost", self.server_address[1]
        self.setup_environ()

    def get_request(self) -> tuple[socket.socket, object]:
        sock, address = super().get_request()
        sock.settimeout(CLIENT_TIMEOUT)
        return sock, address


def settings(environ: dict) -> tuple[int, str]:
    """(port, collections folder) from PORT and RADICALE_DIR. Raises LauncherError
    naming the variable and its value when one is not usable."""
    port_text = environ.get("PORT", "8000")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise LauncherError(f"PORT has value {port_text!r}: not a TCP port (1-65535).")
    folder = environ.get("RADICALE_DIR", "/var/collections")
    if not os.path.isabs(folder):
        raise LauncherError(f"RADICALE_DIR has value {folder!r}: not an absolute path.")
    return int(port_text), folder


def main() -> int:
    try:
        port, folder = settings(dict(os.environ))
        serve(port, folder)
    except (LauncherError, OSError) as exc:
        log_line(f"cannot start: {exc}")
        return 1
    return 0


def serve(port: int, folder: str) -> None:
    """Run Radicale behind the front on ``HOST:port`` until SIGTERM or SIGINT."""
    configuration = radicale_config(folder)
    log.setup()
    log.set_level(configuration.get("logging", "level"),
                  configuration.get("logging", "backtrace_on_debug"))
    radicale_app = radicale.Application(configuration)
    make_principal(radicale_app)
    front = Front(radicale_app, radicale.storage.load(configuration))
    # Radicale's request handler: it decodes the path as UTF-8 and keeps the
    # process environment out of the WSGI environ.
    server = wsgiref.simple_server.make_server(HOST, port, front, server_class=Server,
                                               handler_class=radicale.server.RequestHandler)

    def stop(signum: int, frame: object) -> None:
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log_line(f"Radicale {radicale.VERSION} serving {folder} on {HOST}:{port}")
    server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    sys.exit(main())
