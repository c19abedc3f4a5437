"""Fixtures shared by the whole suite: a real SMTP server and in-process shells."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from sandhaven.config import load_settings
from sandhaven.encryption import open_storage
from sandhaven.server import build_app
from sandhaven.services import Services
from sandhaven.testing import LiveServer, Mailbox, csrf_from, smtp_server, start_server, stop_server

BASE = "http://localhost:6080"


@pytest.fixture
def smtp() -> Iterator[tuple[int, Mailbox]]:
    with smtp_server() as found:
        yield found


@pytest.fixture
def make_shell(tmp_path: Path) -> Iterator[Callable[..., tuple[Services, TestClient]]]:
    """Build an in-process server (real store in tmp_path) and a client for its shell.

    Keyword arguments are settings (``smtp_port=…``, ``dev=True``).
    """
    made: list[Services] = []

    def make(**overrides: Any) -> tuple[Services, TestClient]:
        data = tmp_path / f"data{len(made)}"
        values = {"data_dir": str(data)}
        values.update({k.replace("smtp_", "smtp.", 1): v for k, v in overrides.items()})
        settings = load_settings(environ={}, overrides=values)
        services = Services.build(settings)
        made.append(services)
        client = TestClient(build_app(services), base_url=BASE, follow_redirects=False)
        return services, client

    yield make
    for services in made:
        services.store.close()


@pytest.fixture
def mail_shell(make_shell, smtp):  # type: ignore[no-untyped-def]
    """(services, client, mailbox) with SMTP pointing at the test's real SMTP server."""
    port, mailbox = smtp
    services, client = make_shell(smtp_host="127.0.0.1", smtp_port=port)
    return services, client, mailbox


def login_as(client: TestClient, services: Services, email: str, name: str = "Someone",
             *, admin: bool = False) -> str:
    """Create (if needed) and log in a user by a real session cookie; returns user id."""
    user = services.identity.users.find_by_email(email) or services.identity.users.create(
        email, name, is_admin=admin)
    token = services.identity.sessions.create(user.id)
    client.cookies.set("sandhaven_session", token)
    return user.id


def form_post(client: TestClient, page: str, action: str, data: dict[str, str]):  # type: ignore[no-untyped-def]
    """GET ``page`` for its CSRF token, then POST ``data`` to ``action`` with it."""
    html = client.get(page).text
    return client.post(action, data={"csrf_token": csrf_from(html), **data})


class GrainServer:
    """An in-process server whose lifespan ran (the supervisor runs real sandboxes),
    with the Hello example app installed; ``client`` talks to every host."""

    def __init__(self, services: Services, client: TestClient, app_id: str) -> None:
        self.services, self.client, self.app_id = services, client, app_id

    def run(self, grain_id: str) -> Path:
        """Start the grain on the server's own loop; returns its app socket."""
        return self.client.portal.call(self.services.grains.ensure_running, grain_id)

    def new_grain(self, spk: Path, title: str, email: str = "a@example.org",
                  name: str = "Ann") -> str:
        """Install ``spk``, authenticate ``client`` as a (new) user, create a grain of
        the package's app by its first action; returns the grain ID."""
        app_id = self.services.packages.install(spk).app_id
        bearer(self.client, self.services, email, name)
        made = self.client.post("/api/v1/grains", json={
            "app_id": app_id, "action": 0, "title": title})
        assert made.status_code == 201, made.text
        return made.json()["id"]

    def browser(self, base_url: str = BASE) -> TestClient:
        """Another client (its own cookies) on the same server and event loop: grains
        started by its requests belong to the server's loop, as in production."""
        client = TestClient(self.client.app, base_url=base_url, follow_redirects=False)
        client.portal = self.client.portal
        return client


@pytest.fixture
def grain_server() -> Iterator[GrainServer]:
    from sandhaven.packages.keys import SigningKey
    from sandhaven.packages.testing import build_hello
    from sandhaven.sandbox.testing import make_runtime_root, remove_tree

    root = make_runtime_root()  # reachable by the grain user, unlike pytest's tmp_path
    settings = load_settings(environ={}, overrides={
        "data_dir": str(root / "data"), "sandbox.runtime_dir": str(root / "run")})
    try:
        with open_storage(settings) as storage:  # encrypted, as `serve` runs it
            services = Services.build(settings, storage=storage)
            app_id = services.packages.install(build_hello(root, SigningKey.generate())).app_id
            try:
                with TestClient(build_app(services), base_url=BASE,
                                follow_redirects=False) as client:
                    yield GrainServer(services, client, app_id)
            finally:
                services.store.close()
    finally:
        remove_tree(root)


@pytest.fixture(scope="session")
def app_build_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where app recipes assemble their trees (``<root>/<recipe>``), shared by the
    test session so npm downloads each app once."""
    return tmp_path_factory.mktemp("app-builds")


def bearer(client: TestClient, services: Services, email: str, name: str) -> str:
    """Authenticate ``client`` with a personal API token of a (new) user; returns its ID."""
    user = services.identity.users.find_by_email(email) or services.identity.users.create(
        email, name)
    _, token = services.identity.tokens.create(user.id, "test")
    client.headers["Authorization"] = f"Bearer {token}"
    return user.id


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--all-apps", action="store_true",
                     help="also run the end-to-end tests of every app recipe (make e2e)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``all_apps`` are deselected (not skipped) unless ``--all-apps``
    is given: CI runs the apps of its set, ``make e2e`` runs them all."""
    if config.getoption("--all-apps"):
        return
    keep = [i for i in items if i.get_closest_marker("all_apps") is None]
    if len(keep) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in keep])
        items[:] = keep


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``SANDHAVEN_*`` variable of the machine running the tests leaks into
    commands run in-process (``pytestmark = pytest.mark.usefixtures("clean_env")``)."""
    for name in list(os.environ):
        if name.startswith("SANDHAVEN_"):
            monkeypatch.delenv(name)


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless Chromium (Debian's) driven by Playwright; one per test."""
    from playwright.sync_api import sync_playwright

    from tests.ui import ARGS, CHROMIUM

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


class AppServer:
    """A real ``sandhaven serve --dev`` whose data and runtime dirs the grain user can
    reach; ``install`` adds a package the way an admin does on the command line."""

    def __init__(self, live: LiveServer, data: Path) -> None:
        self.live, self.data = live, data

    @property
    def url(self) -> str:
        return self.live.url

    def install(self, app: Any) -> str:
        """Install ``app``'s package (a ``tests.apps.conftest.BuiltApp``) with
        ``sandhaven install``; returns its app ID."""
        done = subprocess.run([sys.executable, "-m", "sandhaven", "--data-dir", str(self.data),
                               "install", str(app.spk)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return app.app_id


@pytest.fixture
def app_server() -> Iterator[AppServer]:
    from sandhaven.sandbox.testing import make_runtime_root, remove_tree

    root = make_runtime_root()  # reachable by the grain user, unlike pytest's tmp_path
    live = start_server(root / "data", "--dev", "--sandbox-runtime-dir", str(root / "run"))
    try:
        yield AppServer(live, root / "data")
    finally:
        stop_server(live)
        remove_tree(root)
