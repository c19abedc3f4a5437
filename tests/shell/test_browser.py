"""The shell in a real browser: Playwright driving Debian's Chromium, headless."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import expect

from sandhaven.testing import login_link, start_server, stop_server
from tests.ui import ARTIFACTS


def test_setup_login_and_account_in_a_browser(tmp_path: Path, browser, smtp):
    port, mailbox = smtp
    live = start_server(tmp_path / "data", env={"SANDHAVEN_SMTP_HOST": "127.0.0.1",
                                                "SANDHAVEN_SMTP_PORT": str(port)})
    try:
        page = browser.new_page()
        page.goto(live.setup_url())
        page.get_by_label("Your name").fill("Root Admin")
        page.get_by_label("Email address").fill("root@example.org")
        page.get_by_role("button", name="Create admin account").click()
        expect(page.get_by_role("heading", name="Admin")).to_be_visible()
        expect(page.get_by_text("Welcome to Sandhaven.")).to_be_visible()
        # Invite someone by single-use link and set a profile detail.
        page.get_by_role("button", name="Invite").click()
        link = page.locator("#invite-link").inner_text()
        assert link.startswith(live.url + "/invite/")
        page.get_by_role("link", name="Account").click()
        page.get_by_label("Handle").fill("root_admin")
        page.get_by_role("button", name="Save profile").click()
        expect(page.get_by_text("Profile saved.")).to_be_visible()
        page.get_by_role("button", name="Create token").click()
        assert len(page.locator("#new-token").inner_text()) == 43
        page.get_by_role("button", name="Log out", exact=True).click()
        expect(page.get_by_role("heading", name="Log in")).to_be_visible()

        # Log in again by email, in a phone-sized window, with the link from the mail.
        phone = browser.new_page(viewport={"width": 390, "height": 844})
        phone.goto(live.url + "/login")
        phone.get_by_label("Email address").fill("root@example.org")
        phone.get_by_role("button", name="Email me a login link").click()
        expect(phone.get_by_role("heading", name="Check your mail")).to_be_visible()
        phone.goto(login_link(mailbox.wait_for(1)[0]))
        phone.get_by_role("button", name="Continue").click()
        expect(phone.get_by_role("heading", name="Grains")).to_be_visible()
        ARTIFACTS.mkdir(exist_ok=True)
        phone.screenshot(path=str(ARTIFACTS / "shell-grains-phone.png"))
        width = phone.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, "the shell must not scroll sideways on a phone"
    finally:
        stop_server(live)


def test_keyboard_reaches_the_login_form(tmp_path: Path, browser):
    live = start_server(tmp_path / "data", "--dev")
    try:
        page = browser.new_page()
        page.goto(live.url + "/login")
        page.keyboard.press("Tab")  # skip link first
        focused = page.evaluate("document.activeElement.textContent")
        assert "Skip to content" in focused
        page.keyboard.press("Enter")
        for _ in range(5):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.tagName") == "BUTTON":
                break
        assert "Log in as" in page.evaluate("document.activeElement.textContent")
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", name="Grains")).to_be_visible()
    finally:
        stop_server(live)


def test_a_grain_opens_in_its_frame_and_keeps_its_content(tmp_path: Path, browser):
    """Install Hello, create a grain from the Apps page, write through the app on its
    random host, stop the grain, open it again, and see the content."""
    import subprocess
    import sys

    from sandhaven.packages.keys import SigningKey
    from sandhaven.packages.testing import build_hello
    from sandhaven.sandbox.testing import make_runtime_root, remove_tree

    root = make_runtime_root()  # reachable by the grain user
    data = root / "data"
    live = start_server(data, "--dev", "--sandbox-runtime-dir", str(root / "run"))
    try:
        spk = build_hello(root, SigningKey.generate())
        installed = subprocess.run([sys.executable, "-m", "sandhaven", "--data-dir", str(data),
                                    "install", str(spk)], capture_output=True, text=True)
        assert installed.returncode == 0, installed.stderr
        page = browser.new_page()
        page.goto(live.url + "/login")
        page.get_by_role("button", name="Log in as Alice Dev").click()
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Apps").click()
        page.get_by_role("button", name="New note").click()
        expect(page.get_by_role("heading", name="Untitled note")).to_be_visible()
        frame = page.frame_locator("#grain-frame")
        expect(frame.locator("body")).to_contain_text('"x-sandstorm-permissions": "write"')
        expect(frame.locator("body")).to_contain_text("Alice%20Dev")
        src = page.locator("#grain-frame").get_attribute("src")
        assert src.startswith("http://ui-") and f".localhost:{live.port}/" in src
        # Write through the app itself, from inside its frame (same origin as the app).
        app_frame = next(f for f in page.frames if f.url.startswith("http://ui-"))
        status = app_frame.evaluate(
            "fetch('/', {method: 'POST', body: 'hello from the browser'}).then(r => r.status)")
        assert status == 200
        # The app may set the shell's title and path; a message from elsewhere is ignored.
        app_frame.evaluate("window.parent.postMessage({setTitle: 'Groceries', "
                           "setPath: '/list?x=1'}, '*')")
        expect(page.locator("#grain-title")).to_have_text("Groceries")
        page.wait_for_function("location.search.includes('path=%2Flist%3Fx%3D1')")
        # Posted first, from the shell's own window (not the app's origin): ignored.
        page.evaluate("window.postMessage({setPath: '/forged'}, '*')")
        app_frame.evaluate("window.parent.postMessage({setTitle: 'Groceries 2'}, '*')")
        expect(page.locator("#grain-title")).to_have_text("Groceries 2")
        assert "forged" not in page.url
        page.get_by_role("button", name="Stop").click()
        expect(page.get_by_text("Grain stopped.")).to_be_visible()
        page.reload()
        frame = page.frame_locator("#grain-frame")
        expect(frame.locator("body")).to_contain_text("hello from the browser")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "shell-grain-hello.png"))
    finally:
        stop_server(live)
        remove_tree(root)


def test_a_read_only_link_shared_with_another_user(tmp_path: Path, browser):
    """Alice shares a Hello grain read-only by link; Bob opens it as himself and
    cannot save; a visitor not logged in sees it as Anonymous User."""
    import subprocess
    import sys

    from sandhaven.packages.keys import SigningKey
    from sandhaven.packages.testing import build_hello
    from sandhaven.sandbox.testing import make_runtime_root, remove_tree

    root = make_runtime_root()
    data = root / "data"
    live = start_server(data, "--dev", "--sandbox-runtime-dir", str(root / "run"))
    try:
        spk = build_hello(root, SigningKey.generate())
        installed = subprocess.run([sys.executable, "-m", "sandhaven", "--data-dir", str(data),
                                    "install", str(spk)], capture_output=True, text=True)
        assert installed.returncode == 0, installed.stderr
        alice = browser.new_context().new_page()
        alice.goto(live.url + "/login")
        alice.get_by_role("button", name="Log in as Alice Dev").click()
        alice.get_by_role("navigation", name="Main").get_by_role("link", name="Apps").click()
        alice.get_by_role("button", name="New note").click()
        expect(alice.get_by_role("heading", name="Untitled note")).to_be_visible()
        alice.locator("summary", has_text="Share").click()
        alice.get_by_label("Anyone with the link").select_option(label="can view")
        alice.get_by_label("Label").first.fill("readers")
        alice.get_by_role("button", name="Create sharing link").click()
        link = alice.locator("#share-url").inner_text()
        assert link.startswith(live.url + "/shared/")
        expect(alice.get_by_role("table", name="Who has access")).to_contain_text("readers")

        bob = browser.new_context().new_page()
        bob.goto(live.url + "/login")
        bob.get_by_role("button", name="Log in as Bob Dev").click()
        bob.goto(link)
        bob.get_by_role("button", name="Open as Bob Dev").click()
        frame = bob.frame_locator("#grain-frame")
        expect(frame.locator("body")).to_contain_text('"x-sandstorm-permissions": ""')
        expect(frame.locator("body")).to_contain_text("Bob%20Dev")
        app_frame = next(f for f in bob.frames if f.url.startswith("http://ui-"))
        status = app_frame.evaluate(
            "fetch('/', {method: 'POST', body: 'not allowed'}).then(r => r.status)")
        assert status == 403
        bob.get_by_role("navigation", name="Main").get_by_role("link", name="Grains").click()
        expect(bob.get_by_role("table", name="Shared with me")).to_contain_text("Untitled note")

        visitor = browser.new_context().new_page()
        visitor.goto(link)
        frame = visitor.frame_locator("#grain-frame")
        expect(frame.locator("body")).to_contain_text("Anonymous%20User")
        ARTIFACTS.mkdir(exist_ok=True)
        alice.screenshot(path=str(ARTIFACTS / "shell-share-dialog.png"))
    finally:
        stop_server(live)
        remove_tree(root)
