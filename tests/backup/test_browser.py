"""Back up a grain and restore it in Chromium, against a real server."""

from __future__ import annotations

from playwright.sync_api import expect

from sandhaven.packages.keys import SigningKey
from sandhaven.packages.testing import build_hello
from tests.apps.conftest import BuiltApp
from tests.conftest import AppServer
from tests.ui import dev_login, grain_frame, new_grain, screenshot


def test_download_a_backup_and_restore_it_as_a_new_grain(app_server: AppServer, browser,
                                                         tmp_path):
    key = SigningKey.generate()
    app_server.install(BuiltApp(build_hello(tmp_path, key), key))
    page = dev_login(browser, app_server.url)
    note = new_grain(page, "New note")
    assert note.evaluate("fetch('/', {method: 'POST', body: 'pack the tent'})"
                         ".then(r => r.status)") == 200
    page.locator("summary", has_text="Back up").click()
    with page.expect_download() as download:
        page.get_by_role("button", name="Download backup").click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.name == "Untitled note.zip"

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Grains").click()
    page.get_by_label("Backup file (.zip)").set_input_files(str(saved))
    page.get_by_role("button", name="Restore as a new grain").click()
    expect(page.get_by_text("Backup restored as a new grain.")).to_be_visible()
    restored = grain_frame(page)
    expect(restored.locator("body")).to_contain_text("pack the tent")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Grains").click()
    expect(page.get_by_role("link", name="Untitled note")).to_have_count(2)
    screenshot(page, "backup-restored")
