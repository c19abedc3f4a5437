"""The App market end to end: a catalog built by `sandhaven catalog build` from the
real TiddlyWiki recipe, a real `sandhaven serve` reading it (the default kind of
source, a directory), and Debian's Chromium: log in, search the market, install
TiddlyWiki in one click, press "New wiki", and see TiddlyWiki in the grain's frame."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from playwright.sync_api import expect

from sandhaven.testing import start_server, stop_server
from tests.ui import SESSION_HOST, dev_login, grain_frame, screenshot

APPS = Path(__file__).resolve().parents[2] / "apps"


def build_tiddlywiki_catalog(root: Path, build_root: Path) -> Path:
    """``sandhaven catalog build`` of an apps directory holding only TiddlyWiki."""
    apps = root / "apps"
    apps.mkdir()
    os.symlink(APPS / "tiddlywiki", apps / "tiddlywiki")
    out = root / "catalog"
    done = subprocess.run(
        [sys.executable, "-m", "sandhaven", "catalog", "build", str(apps), "-o", str(out),
         "--keys", str(root / "keys"), "--build-dir", str(build_root)],
        capture_output=True, text=True, timeout=300,
        env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(build_root)})
    assert done.returncode == 0, done.stderr
    return out


def test_install_tiddlywiki_from_the_market_in_one_click(browser, app_build_root):
    from sandhaven.sandbox.testing import make_runtime_root, remove_tree

    root = make_runtime_root()  # reachable by the grain user
    catalog = build_tiddlywiki_catalog(root, app_build_root)
    live = start_server(root / "data", "--dev", "--sandbox-runtime-dir", str(root / "run"),
                        env={"SANDHAVEN_CATALOG_SOURCE": str(catalog)})
    try:
        page = dev_login(browser, live.url)  # the first dev account: admin
        page.get_by_role("navigation", name="Main").get_by_role("link",
                                                                name="App market").click()
        expect(page.get_by_role("heading", name="App market")).to_be_visible()
        page.get_by_label("Category").select_option("office")  # searches at once
        page.wait_for_url("**/market?q=&category=office")
        expect(page.get_by_role("heading", name="TiddlyWiki")).to_be_visible()
        page.get_by_label("Search apps").fill("no such app")
        page.get_by_role("button", name="Search").click()
        expect(page.get_by_text("No app in the catalog matches.")).to_be_visible()
        page.get_by_label("Search apps").fill("wiki")
        page.get_by_role("button", name="Search").click()
        expect(page.get_by_role("heading", name="TiddlyWiki")).to_be_visible()
        icon = page.locator("li.app img").first
        expect(icon).to_have_js_property("complete", True)
        assert icon.evaluate("img => img.naturalWidth") > 0, "the catalog's icon loads"
        page.get_by_role("link", name="TiddlyWiki").click()  # its detail page
        expect(page.get_by_text("non-linear personal notebook")).to_be_visible()
        expect(page.get_by_text("BSD-3-Clause")).to_be_visible()
        screenshot(page, "shell-market-detail")
        page.get_by_role("button", name="Install TiddlyWiki").click()

        expect(page.get_by_role("heading", name="Apps", exact=True)).to_be_visible()
        expect(page.get_by_text("App package installed.")).to_be_visible()
        page.get_by_role("button", name="New wiki").click()
        expect(page.get_by_role("heading", name="Untitled wiki")).to_be_visible()
        frame = grain_frame(page)
        assert SESSION_HOST.match(frame.url)
        # TiddlyWiki's own page, rendered in the browser from the grain.
        expect(frame.locator(".tc-site-title")).to_be_visible(timeout=30_000)

        page.get_by_role("navigation", name="Main").get_by_role("link",
                                                                name="App market").click()
        expect(page.locator("li.app").get_by_text("Installed", exact=True)).to_be_visible()
        screenshot(page, "shell-market")
        page.set_viewport_size({"width": 390, "height": 844})
        for path in ("/market", page.locator("li.app h2 a").get_attribute("href")):
            page.goto(live.url + path)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"{path} must not scroll sideways on a phone"
    finally:
        stop_server(live)
        remove_tree(root)
