"""Driving the shell in Chromium: the steps every browser test repeats (log in as a
dev account, create a grain, reach the app's frame on its random host, stop and
reopen, share by link, take a screenshot)."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Browser, Frame, Page, expect

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
# Flags from this machine's notes: no background traffic to hosts that cannot be reached.
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SESSION_HOST = re.compile(r"^http://ui-[0-9a-f]{32}\.localhost:\d+/")


def dev_login(browser: Browser, base_url: str, name: str = "Alice Dev") -> Page:
    """A new browser context (its own cookies) logged in as the dev account ``name``
    of a server started with ``--dev``; returns its page on the Grains page."""
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.goto(base_url + "/login")
    page.get_by_role("button", name=f"Log in as {name}").click()
    expect(page.get_by_role("heading", name="Grains")).to_be_visible()
    return page


def new_grain(page: Page, action: str) -> Frame:
    """Press the action button ``action`` ("New wiki") on the Apps page; returns the
    app's frame once it shows a page of the session host."""
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Apps").click()
    page.get_by_role("button", name=action).click()
    return grain_frame(page)


def grain_frame(page: Page, timeout: float = 30_000) -> Frame:
    """The app's frame on a grain page, after it left the init path for the app.
    Raises playwright's TimeoutError when the app does not answer in ``timeout`` ms."""
    handle = page.locator("#grain-frame").element_handle(timeout=timeout)
    frame = handle.content_frame()
    assert frame is not None
    frame.wait_for_url(SESSION_HOST, timeout=timeout)
    frame.wait_for_url(lambda url: "/_sandhaven/init" not in url, timeout=timeout)
    frame.wait_for_load_state(timeout=timeout)
    return frame


def stop_and_reopen(page: Page) -> Frame:
    """Stop the grain with the top bar's *Stop* button, reload the grain page (which
    starts it again on a fresh session) and return the app's frame."""
    page.get_by_role("button", name="Stop").click()
    expect(page.get_by_text("Grain stopped.")).to_be_visible()
    page.reload()
    return grain_frame(page)


def share_link(page: Page, role: str, label: str) -> str:
    """Create a sharing link from the open grain page's Share dialog for the role
    whose verb phrase is ``role`` ("can view"); returns the link."""
    page.locator("summary", has_text="Share").click()
    page.get_by_label("Anyone with the link").select_option(label=role)
    page.get_by_label("Label").first.fill(label)
    page.get_by_role("button", name="Create sharing link").click()
    return page.locator("#share-url").inner_text()


def open_link(page: Page, link: str, as_name: str | None = None) -> Frame:
    """Open a sharing link; a logged-in user opens it as ``as_name`` (their name),
    a visitor anonymously. Returns the app's frame."""
    page.goto(link)
    if as_name is not None:
        page.get_by_role("button", name=f"Open as {as_name}").click()
    return grain_frame(page)


def screenshot(page: Page, name: str) -> Path:
    """Save a screenshot of ``page`` as ``test-artifacts/<name>.png``; returns it."""
    path = ARTIFACTS / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path))
    return path
