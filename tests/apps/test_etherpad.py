"""The Etherpad recipe (apps/etherpad): built from npm with a fresh key, installed
into an in-process server, run in a real sandbox with Debian's node, and driven
over Etherpad's own socket.io protocol as the pad page (or a crafted request) does."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Frame, FrameLocator, expect

from sandhaven.packages.spk import open_spk, verify, verify_file
from tests.apps.conftest import AppServer, RecipeCache
from tests.apps.etherpad_client import PadSocket
from tests.conftest import GrainServer, bearer
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

RECIPE = Path(__file__).parents[2] / "apps" / "etherpad"
DOCS_IMG = Path(__file__).parents[2] / "docs" / "using" / "img"
RENEE = {"X-Sandstorm-Permissions": "edit", "X-Sandstorm-User-Id": "a" * 32,
         "X-Sandstorm-Username": "Ren%C3%A9e%20D."}
BOB = {"X-Sandstorm-Permissions": "", "X-Sandstorm-User-Id": "b" * 32,
       "X-Sandstorm-Username": "Bob"}


def open_page(app: httpx.Client, who: dict[str, str]) -> tuple[str, dict[str, str]]:
    """Follows ``/`` to the user's pad page; returns the pad ID and the cookies the
    grain set (its session cookie for the role and the author token). Cookies are
    sent explicitly, as each test user's browser would: the client keeps none."""
    app.cookies.clear()
    first = app.get("/", headers=who)
    assert first.status_code == 302
    page = app.get(first.headers["location"], headers=who)
    assert page.status_code == 200 and "<title>Etherpad</title>" in page.text
    cookies = dict(c.split(";", 1)[0].split("=", 1) for c in page.headers.get_list("set-cookie"))
    app.cookies.clear()
    pad_id = first.headers["location"].split("?")[0].removeprefix("/p/")
    return pad_id, cookies


def with_cookies(who: dict[str, str], cookies: dict[str, str]) -> dict[str, str]:
    return {**who, "Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}


def test_the_package_is_signed_with_the_given_key_and_names_the_manifest(
        recipes: RecipeCache, app_build_root: Path):
    built = recipes.get("etherpad")
    assert verify_file(built.spk)["app_id"] == built.app_id  # every entry checks out
    with open_spk(built.spk) as f:
        manifest = verify(f).manifest
    assert manifest.app.title == "Etherpad" and manifest.app.port == 8000
    assert [r.permissions for r in manifest.roles] == [["edit"], []]
    assert manifest.metadata.license.spdx == "Apache-2.0"
    # Etherpad sits in etherpad/src with its dependencies in src/node_modules; npm
    # and the drivers for database servers were pruned.
    tree = app_build_root / "etherpad" / "tree" / "etherpad"
    assert (tree / "src" / "node" / "server.js").is_file()
    assert (tree / "node_modules" / "ep_etherpad-lite").resolve() == (tree / "src").resolve()
    assert (tree / "src" / "node_modules" / "dirty").is_dir()
    assert not (tree / "src" / "node_modules" / "npm").exists()
    assert not (tree / "src" / "node_modules" / "mssql").exists()


def test_editors_write_the_pad_viewers_cannot_even_by_crafted_requests_and_it_survives(
        grain_server: GrainServer, recipes: RecipeCache):
    built = recipes.get("etherpad")
    app_id = grain_server.services.packages.install(built.spk).app_id
    assert app_id == built.app_id
    bearer(grain_server.client, grain_server.services, "a@example.org", "Ann")
    made = grain_server.client.post("/api/v1/grains", json={
        "app_id": app_id, "action": 0, "title": "Minutes"})
    assert made.status_code == 201
    gid = made.json()["id"]
    sock = grain_server.run(gid)
    with grain_http(sock) as app:
        # "/" leads each user to the grain's pad with their name: editors to the
        # pad, viewers to its read-only ID.
        to_pad = app.get("/", headers=RENEE)
        assert to_pad.headers["location"] == "/p/pad?userName=Ren%C3%A9e%20D."
        to_view = app.get("/", headers=BOB).headers["location"]
        assert to_view.startswith("/p/r.") and to_view.endswith("?userName=Bob")
        read_only = to_view.split("?")[0].removeprefix("/p/")
        assert app.get("/p/pad", headers=BOB).headers["location"] == f"/p/{read_only}"
        assert app.get("/p/another", headers=RENEE).status_code == 404
        assert app.get("/p/%E0%A4%A", headers=RENEE).status_code == 400
        # A name that is not valid percent-encoding is left out, not passed on.
        nameless = app.get("/", headers={**RENEE, "X-Sandstorm-Username": "%E0%A4%A"})
        assert nameless.headers["location"] == "/p/pad"
        assert app.get("/admin/plugins", headers=RENEE).status_code == 404
        assert app.get("/api/1/listAllPads", headers=RENEE).status_code == 404
        # WebSocket upgrades are relayed for socket.io only.
        upgrade = {**RENEE, "Connection": "Upgrade", "Upgrade": "websocket",
                   "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
        assert app.get("/p/pad", headers=upgrade).status_code == 404
        # A target that is not a path at all is answered, and the grain lives on.
        with socket.socket(socket.AF_UNIX) as raw:
            raw.connect(str(sock))
            raw.sendall(b"GET http://[ HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                        b"Upgrade: websocket\r\n\r\n")
            assert raw.recv(100).startswith((b"HTTP/1.1 404", b"HTTP/1.1 400"))
        assert app.get("/", headers=RENEE).status_code == 302

        # The editor types through socket.io, as the pad page does.
        pad, renee_cookies = open_page(app, RENEE)
        assert pad == "pad" and "ep_sid_editor" in renee_cookies
        renee = PadSocket(app, with_cookies(RENEE, renee_cookies))
        renee.connect()
        start = renee.open_pad("pad", renee_cookies["token"])
        assert start["readonly"] is False
        assert start["userName"] == "Renée D."  # the author is named after the user
        rev = start["collab_client_vars"]["rev"]
        text = start["collab_client_vars"]["initialAttributedText"]["text"]
        renee.append("pad", rev, len(text), "Agenda: budget")
        assert renee.receive("ACCEPT_COMMIT")["data"]["newRev"] == rev + 1
        editor = with_cookies(RENEE, renee_cookies)
        assert app.get("/p/pad/export/txt", headers=editor).text.startswith("Agenda: budget")
        # Pages of a framed session get the cookie script; an exported document not.
        framed = {**editor, "Host": "ui-0123.localhost:6080"}
        page = app.get("/p/pad?userName=Ren%C3%A9e", headers=framed).text
        assert "SameSite=None; Secure; Partitioned" in page
        exported = app.get("/p/pad/export/html", headers=framed)
        assert "Agenda: budget" in exported.text and "Partitioned" not in exported.text

        # The viewer reads it; crafting a connection to the writable pad ID, even
        # with the editor's session cookie, gives a read-only session whose change
        # Etherpad drops (the grain answers the next request, a history query).
        pad, bob_cookies = open_page(app, BOB)
        assert pad == read_only and "ep_sid_viewer" in bob_cookies
        assert app.get(f"/p/{read_only}/export/txt", headers=with_cookies(BOB, bob_cookies)
                       ).text.startswith("Agenda: budget")
        bob = PadSocket(app, with_cookies(BOB, {**renee_cookies, **bob_cookies}))
        bob.connect()
        crafted = bob.open_pad("pad", bob_cookies["token"])
        assert crafted["readonly"] is True
        assert crafted["userId"] != start["userId"]  # each person is their own author
        assert crafted["userName"] == "Bob"
        bob.append("pad", rev + 1, len("Agenda: budget") + len(text), "Bob was here")
        bob.history("pad")
        assert not [m for m in bob.inbox if m.get("data", {}).get("type") == "ACCEPT_COMMIT"]
        # Nor can a viewer import over the pad.
        assert app.post("/p/pad/import", headers=BOB, files={"file": ("a.txt", b"x")}
                        ).status_code == 403

        # The same person in a new session is the same author (same color, name).
        _, new_cookies = open_page(app, RENEE)
        again = PadSocket(app, with_cookies(RENEE, new_cookies))
        again.connect()
        assert again.open_pad("pad", new_cookies["token"])["userId"] == start["userId"]

    stopped = grain_server.client.post(f"/api/v1/grains/{gid}/stop")
    assert stopped.json()["state"] == "stopped"
    with grain_http(grain_server.run(gid)) as app:
        _, cookies = open_page(app, RENEE)
        saved = app.get("/p/pad/export/txt", headers=with_cookies(RENEE, cookies)).text
        assert saved.startswith("Agenda: budget") and "Bob was here" not in saved


def test_pruning_refuses_a_folder_that_is_not_an_install_of_etherpad(tmp_path):
    missing = subprocess.run(["node", str(RECIPE / "prune.js"), str(tmp_path)],
                             capture_output=True, text=True)
    assert missing.returncode == 1
    assert missing.stderr == f"prune: no npm install record at {tmp_path}/.package-lock.json\n"
    (tmp_path / ".package-lock.json").write_text(json.dumps({"packages": {
        "node_modules/ep_etherpad-lite": {"dependencies": {}}}}))
    (tmp_path / "kept").mkdir()
    other = subprocess.run(["node", str(RECIPE / "prune.js"), str(tmp_path)],
                           capture_output=True, text=True)
    assert other.returncode == 1
    assert other.stderr == f"prune: {tmp_path} does not look like an install of " \
        "ep_etherpad-lite\n"
    assert (tmp_path / "kept").is_dir()  # nothing removed


def editor_body(frame: Frame) -> FrameLocator:
    """Etherpad's editable text: a body in an iframe (ace_inner) in an iframe (ace_outer)."""
    return frame.frame_locator('iframe[name="ace_outer"]').frame_locator(
        'iframe[name="ace_inner"]')


def type_in_pad(frame: Frame, text: str) -> None:
    body = editor_body(frame).locator("#innerdocbody")
    body.click()
    frame.page.keyboard.press("Control+End")
    frame.page.keyboard.type(text)


def wait_saved(frame: Frame, pad: str, text: str, timeout: float = 30) -> None:
    """Waits until the grain's copy of ``pad`` (its text export, read from the page)
    holds ``text``: Etherpad sends typed changes in the background."""
    deadline = time.monotonic() + timeout
    while True:
        saved = frame.evaluate("(pad) => fetch(`/p/${pad}/export/txt`).then(r => r.text())", pad)
        if text in saved:
            return
        assert time.monotonic() < deadline, f"the pad holds {saved!r}, not {text!r}"
        frame.page.wait_for_timeout(200)


# Sent from a viewer's pad page with the page's own socket.io client: a session
# on the writable pad ID, then a change to it, then a history query whose answer
# shows the change was handled. Returns whether the session was read-only and
# whether the change was accepted.
CRAFTED_CHANGE = """async () => {
  const token = document.cookie.split('; ').find((c) => c.startsWith('token=')).slice(6);
  const socket = io.connect(location.origin, {path: '/socket.io', transports: ['websocket'],
                                              forceNew: true});
  const seen = [];
  const next = (type) => new Promise((resolve) => {
    const check = () => {
      const found = seen.find((m) => (m.type === 'COLLABROOM' ? m.data.type : m.type) === type);
      if (found) resolve(found); else setTimeout(check, 50);
    };
    check();
  });
  socket.on('message', (m) => seen.push(m));
  socket.json.send({component: 'pad', type: 'CLIENT_READY', padId: 'pad', sessionID: null,
                    token, protocolVersion: 2});
  const vars = (await next('CLIENT_VARS')).data;
  const text = vars.collab_client_vars.initialAttributedText.text;
  const add = 'Carol was here';
  socket.json.send({component: 'pad', type: 'COLLABROOM', padId: 'pad', data: {
    type: 'USER_CHANGES', baseRev: vars.collab_client_vars.rev,
    changeset: `Z:${text.length.toString(36)}>${add.length.toString(36)}+` +
               `${add.length.toString(36)}$${add}`,
    apool: {numToAttrib: {}, nextNum: 0}}});
  socket.json.send({component: 'pad', type: 'CHANGESET_REQ', padId: 'pad',
                    data: {start: 0, granularity: 1, requestID: 1}});
  await next('CHANGESET_REQ');
  socket.disconnect();
  return {readonly: vars.readonly,
          accepted: seen.some((m) => m.type === 'COLLABROOM' && m.data.type === 'ACCEPT_COMMIT')};
}"""


@pytest.mark.all_apps
def test_two_people_write_one_pad_live_it_survives_reload_and_restart_and_viewers_cannot(
        app_server: AppServer, recipes: RecipeCache, browser):
    """Through Etherpad's own editor in the shell's iframe on each session's host."""
    app_server.install(recipes.get("etherpad"))
    alice_page = dev_login(browser, app_server.url, "Alice Dev")
    alice = new_grain(alice_page, "New pad")
    assert "/p/pad?userName=Alice%20Dev" in alice.url
    type_in_pad(alice, "Minutes of Monday")
    wait_saved(alice, "pad", "Minutes of Monday")
    alice_page.reload()
    alice = grain_frame(alice_page)
    expect(editor_body(alice).locator("#innerdocbody")).to_contain_text("Minutes of Monday")

    # Bob, another browser, edits the same grain through an editor's link: each
    # sees the other's typing live, under the other's name.
    edit_link = share_link(alice_page, "can edit", "Bob's link")
    alice = grain_frame(alice_page)  # the share form reloads the grain page
    bob_page = dev_login(browser, app_server.url, "Bob Dev")
    bob = open_link(bob_page, edit_link, as_name="Bob Dev")
    expect(editor_body(bob).locator("#innerdocbody")).to_contain_text("Minutes of Monday")
    type_in_pad(bob, " and Bob's notes")
    expect(editor_body(alice).locator("#innerdocbody")).to_contain_text("Bob's notes")
    type_in_pad(alice, " and Alice's reply")
    expect(editor_body(bob).locator("#innerdocbody")).to_contain_text("Alice's reply")
    expect(bob.locator("#otheruserstable")).to_contain_text("Alice Dev")
    expect(alice.locator("#otheruserstable")).to_contain_text("Bob Dev")
    wait_saved(alice, "pad", "Alice's reply")

    alice = stop_and_reopen(alice_page)
    expect(editor_body(alice).locator("#innerdocbody")).to_contain_text(
        "Minutes of Monday and Bob's notes and Alice's reply")
    shot = screenshot(alice_page, "apps/etherpad")
    DOCS_IMG.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, DOCS_IMG / "etherpad.png")

    # Carol, with a viewer's link, reads the pad on its read-only ID; a change she
    # crafts for the writable pad ID is refused by Etherpad.
    view_link = share_link(alice_page, "can view", "Carol's link")
    alice = grain_frame(alice_page)
    carol_page = dev_login(browser, app_server.url, "Carol Dev")
    carol = open_link(carol_page, view_link, as_name="Carol Dev")
    assert "/p/r." in carol.url
    expect(editor_body(carol).locator("#innerdocbody")).to_contain_text("Alice's reply")
    expect(alice.locator("#otheruserstable")).to_contain_text("Carol Dev")
    outcome = carol.evaluate(CRAFTED_CHANGE)
    assert outcome == {"readonly": True, "accepted": False}
    read_only = carol.url.split("/p/")[1].split("?")[0]
    saved = carol.evaluate("(pad) => fetch(`/p/${pad}/export/txt`).then(r => r.text())",
                           read_only)
    assert "Alice's reply" in saved and "Carol was here" not in saved
    expect(editor_body(alice).locator("#innerdocbody")).not_to_contain_text("Carol was here")
