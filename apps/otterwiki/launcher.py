"""Runs An Otter Wiki inside a grain (see docs/developing/otterwiki.md).

Usage: /usr/bin/python3 -I /opt/app/launcher.py   (environment: PORT, WIKI_DIR)

The same command creates a grain (the action) and continues it. On the first
start it makes the wiki's git repository and a random secret key under
``WIKI_DIR``; each is made beside its final name and renamed into place, so a
first start cut short leaves nothing half-made. Then it configures An Otter Wiki
through the environment (its documented way) and runs it with gunicorn on the
manifest's port on loopback, in this process: gunicorn's master stays PID-stable
for the platform's stop signal and forwards it to its worker.

Python runs isolated (``-I``): the app's libraries come from ``lib/`` beside
this file (installed there at build time, with bytecode compiled, since the
package is read-only in the grain) and nothing from the environment changes
where Python looks.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

APP = Path(__file__).resolve().parent
sys.path[:0] = [str(APP / "lib"), str(APP)]

GIT = "/usr/bin/git"


def log(message: str) -> None:
    print(f"launcher: {message}", file=sys.stderr, flush=True)


def make_repository(path: Path) -> None:
    """An empty git repository at ``path`` unless one is there."""
    if path.exists():
        return
    fresh = path.with_name(path.name + ".new")
    shutil.rmtree(fresh, ignore_errors=True)
    log(f"creating the wiki's repository in {path}")
    subprocess.run([GIT, "init", "--quiet", "--initial-branch=main", str(fresh)], check=True)
    fresh.rename(path)


def secret_key(path: Path) -> str:
    """The grain's own secret for the wiki's session cookies, made once."""
    if not path.exists():
        fresh = path.with_name(path.name + ".new")
        fresh.write_text(secrets.token_hex(32), encoding="ascii")
        fresh.chmod(0o600)
        fresh.rename(path)
    return path.read_text(encoding="ascii").strip()


def configure(wiki: Path) -> None:
    """An Otter Wiki's settings, as environment variables (it reads every setting
    from there, docs: otterwiki.com/Installation#configuration)."""
    os.environ.update({
        "REPOSITORY": str(wiki / "repository"),
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{wiki / 'preferences.sqlite'}",
        "SECRET_KEY": secret_key(wiki / "secret_key"),
        # Identity comes from the platform; sandhaven_otterwiki.py sets these
        # headers and the roles in them.
        "AUTH_METHOD": "PROXY_HEADER",
        "AUTH_HEADERS_USERNAME": "x-otterwiki-name",
        "AUTH_HEADERS_EMAIL": "x-otterwiki-email",
        "AUTH_HEADERS_PERMISSIONS": "x-otterwiki-roles",
        # The grain has no network: no mail, no remote git.
        "MAIL_SERVER": "",
        "GIT_REMOTE_PUSH_ENABLED": "false",
        "GIT_REMOTE_PULL_ENABLED": "false",
        "GIT_WEB_SERVER": "false",
        "ROBOTS_TXT": "disallow",
        "LOG_LEVEL": "WARNING",
    })


def serve(port: str) -> None:
    from gunicorn.app.wsgiapp import run

    sys.argv = [
        "gunicorn",
        "--bind", f"127.0.0.1:{port}",
        # One process (memory: one copy of the wiki), a few threads for
        # concurrent page loads. Requests reach it only through the platform's
        # bridge on loopback, so gunicorn's default trust of 127.0.0.1 for
        # X-Forwarded-Proto is right: links use the session's scheme.
        "--workers", "1",
        "--threads", "4",
        "--chdir", str(APP),
        "--worker-tmp-dir", "/tmp",
        "--graceful-timeout", "5",
        # Idle connections from the platform stay open longer than the platform
        # keeps them (30 s), so it is always the one to close them and never
        # sends a request on a connection the wiki is closing.
        "--keep-alive", "75",
        "--error-logfile", "-",
        "sandhaven_otterwiki:app",
    ]
    sys.exit(run())


def main() -> None:
    port = os.environ.get("PORT", "8000")
    wiki = Path(os.environ.get("WIKI_DIR", "/var/otterwiki"))
    wiki.mkdir(parents=True, exist_ok=True)
    make_repository(wiki / "repository")
    configure(wiki)
    serve(port)


if __name__ == "__main__":
    main()
