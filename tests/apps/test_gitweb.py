"""The GitWeb recipe (apps/gitweb): glue packed with a fresh key, installed into an
in-process server, run in a real sandbox with Debian's gitweb, git and lighttpd;
a real ``git`` client pushes and clones through the grain's socket."""

from __future__ import annotations

import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from sandhaven.packages.keys import SigningKey, write_key_file
from tests.apps.conftest import (
    APPS,
    SANDHAVEN,
    AppServer,
    RecipeCache,
    build_recipe,
    verified_manifest,
)
from tests.conftest import GrainServer
from tests.grains.test_grains import grain_http
from tests.ui import (
    dev_login,
    grain_frame,
    new_grain,
    open_link,
    screenshot,
    share_link,
    stop_and_reopen,
)

REPO = "/git/repository.git"
GIT_ENV = {"PATH": "/usr/bin:/bin", "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0",
           "GIT_AUTHOR_NAME": "Alice", "GIT_AUTHOR_EMAIL": "alice@example.org",
           "GIT_COMMITTER_NAME": "Alice", "GIT_COMMITTER_EMAIL": "alice@example.org"}


def build(out_dir: Path) -> tuple[Path, SigningKey]:
    built = build_recipe("gitweb", out_dir / "build", out_dir)
    return built.spk, built.key


@contextmanager
def tcp_to(sock: Path) -> Iterator[int]:
    """A loopback TCP port relaying each connection to the grain's Unix socket, so
    that a real git client (which speaks only TCP) reaches the grain."""
    server = socket.create_server(("127.0.0.1", 0))

    def pipe(src: socket.socket, dst: socket.socket) -> None:
        with src, dst:
            while data := src.recv(65536):
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)

    def accept() -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            grain = socket.socket(socket.AF_UNIX)
            grain.connect(str(sock))
            threading.Thread(target=pipe, args=(client, grain.dup()), daemon=True).start()
            threading.Thread(target=pipe, args=(grain, client.dup()), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


def git(*args: str, cwd: Path, permissions: str | None = None, header: str | None = None,
        check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run git; ``permissions``: the identity header the platform would add on the API
    host (for tests on the grain's socket); ``header``: another extra HTTP header."""
    options = []
    if permissions is not None:
        options += ["-c", f"http.extraHeader=X-Sandstorm-Permissions: {permissions}"]
    if header is not None:
        options += ["-c", f"http.extraHeader={header}"]
    return subprocess.run(["git", *options, *args], cwd=cwd, env=GIT_ENV, check=check,
                          capture_output=True, text=True, timeout=60)


def small_repository(work: Path, message: str) -> Path:
    """A repository at ``work`` with one commit of a README, on branch main."""
    work.mkdir()
    git("init", "-q", "-b", "main", cwd=work)
    (work / "README").write_text("hello\n")
    git("add", "README", cwd=work)
    git("commit", "-q", "-m", message, cwd=work)
    return work


def test_the_package_is_signed_with_the_given_key_and_names_the_manifest(tmp_path):
    spk, key = build(tmp_path)
    manifest = verified_manifest(spk, key)
    assert manifest.app.title == "GitWeb" and manifest.app.api_path == REPO + "/"
    assert [r.permissions for r in manifest.roles] == [["edit"], []]


def test_building_without_debians_gitweb_names_what_is_missing(tmp_path):
    """On a machine without the gitweb package (hidden here by an empty tmpfs in a
    bubblewrap mount namespace) the build stops with one line and packs nothing."""
    key = SigningKey.generate()
    write_key_file(key, tmp_path / "gitweb.key")
    done = subprocess.run(
        ["bwrap", "--dev-bind", "/", "/", "--tmpfs", "/usr/share/gitweb", "bash",
         str(APPS / "gitweb" / "build.sh"), str(tmp_path / "gitweb.key"),
         str(tmp_path / "gitweb.spk"), str(tmp_path / "build")],
        capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "SANDHAVEN": str(SANDHAVEN)})
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "build.sh: /usr/share/gitweb/gitweb.cgi is missing; install Debian's gitweb, git "
        "and lighttpd"]
    assert not (tmp_path / "gitweb.spk").exists()


def test_editors_push_viewers_clone_but_cannot_push_and_gitweb_shows_commits(
        grain_server: GrainServer, tmp_path):
    spk, _ = build(tmp_path)
    gid = grain_server.new_grain(spk, "Project")
    work = small_repository(tmp_path / "work", "First commit from Alice")
    sock = grain_server.run(gid)
    with tcp_to(sock) as port:
        url = f"http://127.0.0.1:{port}{REPO}"
        # A viewer is refused before git runs, for the advertisement and the pack.
        refused = git("push", url, "main", cwd=work, permissions="", check=False)
        assert refused.returncode != 0 and "403" in refused.stderr
        pushed = git("push", url, "main", cwd=work, permissions="edit", check=False)
        assert pushed.returncode == 0, pushed.stderr
        cloned = git("clone", "-q", url, str(tmp_path / "clone"), cwd=tmp_path, permissions="")
        assert cloned.returncode == 0
        assert (tmp_path / "clone" / "README").read_text() == "hello\n"
    with grain_http(sock) as web:
        home = web.get("/")
        assert home.status_code == 200 and "repository.git" in home.text
        log = web.get("/", params={"p": "repository.git", "a": "log"})
        assert "First commit from Alice" in log.text
        css = web.get("/static/gitweb.css")
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
        # The pack endpoint itself refuses a viewer, whatever the client sends.
        assert web.post(f"{REPO}/git-receive-pack", content=b"0000").status_code == 403
        assert web.get(f"{REPO}/info/refs", params={"service": "git-receive-pack"},
                       headers={"X-Sandstorm-Permissions": "comment"}).status_code == 403
    stopped = grain_server.client.post(f"/api/v1/grains/{gid}/stop")
    assert stopped.json()["state"] == "stopped"
    with grain_http(grain_server.run(gid)) as web:
        log = web.get("/", params={"p": "repository.git", "a": "log"})
        assert "First commit from Alice" in log.text


def api_token(page: Page, role: str, label: str) -> tuple[str, str]:
    """Create an API token on the open grain page for the role shown as ``role``;
    returns (API URL, token) from the webkey ``<api-url>#<token>``."""
    page.locator("summary", has_text="API token").click()
    page.get_by_label("Role").select_option(label=role)
    page.locator("#token-label").fill(label)
    page.get_by_role("button", name="Create API token").click()
    url, _, token = page.locator("#webkey").text_content().strip().partition("#")
    return url, token


@pytest.mark.all_apps
def test_git_pushes_over_the_api_host_with_a_token_show_in_gitweb_and_viewers_cannot_push(
        app_server: AppServer, recipes: RecipeCache, browser, tmp_path):
    """A real git client on the API host of a real server; GitWeb in Chromium."""
    app_server.install(recipes.get("gitweb"))
    page = dev_login(browser, app_server.url)
    web = new_grain(page, "New git repository")
    expect(web.get_by_role("link", name="repository.git").first).to_be_visible()
    work = small_repository(tmp_path / "work", "First commit from Alice")
    url, editor = api_token(page, "editor (can push)", "laptop")
    assert url.startswith("http://api.localhost:")
    # An editor's token pushes, as a bearer header…
    pushed = git("push", url, "main", cwd=work, header=f"Authorization: Bearer {editor}",
                 check=False)
    assert pushed.returncode == 0, pushed.stderr
    # …and a viewer's token, as git's HTTP Basic password, can clone but not push.
    _, viewer = api_token(page, "viewer (can view)", "reader")
    basic = url.replace("http://", f"http://reader:{viewer}@")
    cloned = git("clone", "-q", basic, str(tmp_path / "clone"), cwd=tmp_path)
    assert (tmp_path / "clone" / "README").read_text() == "hello\n"
    (work / "README").write_text("changed\n")
    git("commit", "-q", "-am", "Second commit", cwd=work)
    refused = git("push", basic, "main", cwd=work, check=False)
    assert refused.returncode != 0 and "403" in refused.stderr, cloned.stderr + refused.stderr
    # The pushed commit, and only it, in GitWeb in the grain's frame.
    web = grain_frame(page)
    web.get_by_role("link", name="repository.git").first.click()
    expect(web.get_by_text("First commit from Alice").first).to_be_visible()
    expect(web.get_by_text("Second commit")).to_have_count(0)
    web = stop_and_reopen(page)
    web.get_by_role("link", name="repository.git").first.click()
    expect(web.get_by_text("First commit from Alice").first).to_be_visible()
    screenshot(page, "apps/gitweb")
    # A viewer share in the browser: Bob sees the commit, and the repository refuses
    # a push from his session.
    link = share_link(page, "can view", "for Bob")
    bob = dev_login(browser, app_server.url, "Bob Dev")
    seen = open_link(bob, link, as_name="Bob Dev")
    seen.get_by_role("link", name="repository.git").first.click()
    expect(seen.get_by_text("First commit from Alice").first).to_be_visible()
    statuses = seen.evaluate("""async () => [
        (await fetch('/git/repository.git/info/refs?service=git-receive-pack')).status,
        (await fetch('/git/repository.git/git-receive-pack', {method: 'POST', body: '0000',
            headers: {'Content-Type': 'application/x-git-receive-pack-request'}})).status,
    ]""")
    assert statuses == [403, 403]
