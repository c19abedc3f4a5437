"""The EtherCalc recipe (apps/ethercalc): built from npm with a fresh key, installed
into an in-process server, run in a real sandbox with Debian's node; driven over
its HTTP API and its socket.io channel (WebSocket and polling) through the
grain's socket, and by two and three users in Chromium through the gateway."""

from __future__ import annotations

import os
import re
import subprocess

import pytest
from playwright.sync_api import Frame, expect

from sandhaven.packages.spk import open_spk, verify, verify_file
from tests.apps.conftest import APPS, AppServer, RecipeCache
from tests.apps.socketio import PollingClient, WebSocketClient
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

RECIPE = APPS / "ethercalc"
EDITOR = {"X-Sandstorm-Permissions": "edit"}
VIEWER: dict[str, str] = {}
COMMAND = {"Content-Type": "text/plain"}
A1 = "/_/sheet/cells/A1"


def execute(cmdstr: str) -> dict[str, str]:
    """A sheet change as EtherCalc's page sends it over its socket."""
    return {"type": "execute", "room": "sheet", "cmdstr": cmdstr, "saveundo": True,
            "user": "test"}


def is_reply(kind: str):
    return lambda name, data: name == "data" and data.get("type") == kind


@pytest.fixture
def grain_logs(grain_server: GrainServer):
    """Prints the logs of the grains the test ran (shown when it fails)."""
    yield
    for log in sorted(grain_server.services.supervisor.config.log_dir.glob("*/log")):
        print(f"--- {log.parent.name}\n{log.read_text(errors='replace')}")


def a1(app) -> object:
    return app.get(A1).json().get("datavalue")


def test_the_package_is_signed_with_the_given_key_and_names_the_manifest(
        recipes: RecipeCache):
    built = recipes.get("ethercalc")
    assert verify_file(built.spk)["app_id"] == built.app_id
    with open_spk(built.spk) as f:
        manifest = verify(f).manifest
    assert manifest.app.title == "EtherCalc" and manifest.app.port == 8000
    assert [r.permissions for r in manifest.roles] == [["edit"], []]
    assert manifest.metadata.license.spdx == "CPAL-1.0 AND Artistic-2.0"


@pytest.mark.parametrize(("env", "message"), [
    ({"PORT": "80a"}, "PORT has value '80a': not a port number (1-65535)"),
    ({"PORT": "70000"}, "PORT has value '70000': not a port number (1-65535)"),
    ({"DATA_DIR": "var"}, "DATA_DIR has value 'var': not an absolute path"),
    ({"DATA_DIR": "/nonexistent"}, "DATA_DIR has value '/nonexistent': no such directory"),
])
def test_the_launcher_refuses_bad_settings_in_one_line(env, message, tmp_path):
    # The launcher checks its settings before loading EtherCalc, so the glue alone runs.
    done = subprocess.run(["/usr/bin/node", str(RECIPE / "launcher.js")], capture_output=True,
                          text=True, timeout=30, cwd=tmp_path,
                          env={"PATH": "/usr/bin:/bin", **env})
    assert done.returncode == 2
    assert done.stderr == f"launcher: {message}\n"
    assert os.listdir(tmp_path) == []


def test_editors_change_the_sheet_live_viewers_watch_and_are_refused(
        grain_server: GrainServer, recipes: RecipeCache, grain_logs):
    built = recipes.get("ethercalc")
    app_id = grain_server.services.packages.install(built.spk).app_id
    assert app_id == built.app_id
    bearer(grain_server.client, grain_server.services, "a@example.org", "Ann")
    made = grain_server.client.post("/api/v1/grains", json={
        "app_id": app_id, "action": 0, "title": "Budget"})
    assert made.status_code == 201
    gid = made.json()["id"]
    sock = grain_server.run(gid)
    with grain_http(sock) as app:
        # The grain opens onto its one sheet; viewers onto EtherCalc's view mode.
        assert app.get("/", headers=EDITOR).headers["location"] == "/sheet"
        assert app.get("/", headers=VIEWER).headers["location"] == "/sheet/view"
        page = app.get("/sheet", headers=VIEWER)
        assert page.status_code == 200 and "EtherCalc" in page.text
        # An editor's change over HTTP, on a sheet nobody has opened yet.
        made = app.post("/_/sheet", content="set A1 value n 42", headers={**EDITOR, **COMMAND})
        assert made.status_code == 202
        assert a1(app) == 42

        # A viewer's changes over HTTP are refused, whatever the route.
        assert app.post("/_/sheet", content="set A1 value n 7",
                        headers={**VIEWER, **COMMAND}).status_code == 403
        assert app.put("/_/sheet", content="", headers={**VIEWER, **COMMAND}
                       ).status_code == 403
        assert app.delete("/_/sheet", headers=VIEWER).status_code == 403
        assert app.post("/_", content="a,b", headers={**VIEWER, "Content-Type": "text/csv"}
                        ).status_code == 403
        assert app.get("/_new", headers=VIEWER).status_code == 403
        assert app.get("/sheet/form", headers=VIEWER).status_code == 403
        assert app.head("/_NEW/", headers=VIEWER).status_code == 403  # express ignores case
        assert a1(app) == 42

        with WebSocketClient(sock, EDITOR) as editor, WebSocketClient(sock, VIEWER) as viewer:
            # The viewer sees the sheet's content...
            viewer.emit("data", {"type": "ask.log", "room": "sheet", "user": "viewer"})
            loaded = viewer.wait_for(is_reply("log"))
            assert "cell:A1:v:42" in loaded["snapshot"]
            # ...and the editor's changes as they happen.
            editor.emit("data", execute("set B1 text t live"))
            seen = viewer.wait_for(is_reply("execute"))
            assert seen["cmdstr"] == "set B1 text t live"
            # The viewer's changes go nowhere: not saved, not relayed to the editor.
            editor.emit("data", {"type": "ask.log", "room": "sheet", "user": "editor"})
            editor.wait_for(is_reply("log"))
            viewer.emit("data", execute("set A1 value n 7"))
            viewer.emit("data", {"type": "stopHuddle", "room": "sheet"})
            viewer.emit("data", {"type": "chat", "room": "sheet", "msg": "hi"})
            # (asked for a sheet that does not exist, EtherCalc would create it)
            viewer.emit("data", {"type": "ask.log", "room": "other", "user": "viewer"})
            viewer.emit("data", {"type": "ask.recalc", "room": "__third", "user": "viewer"})
            # Messages of one socket are handled in order: once the viewer's next
            # request is answered, its refused ones are behind it.
            viewer.emit("data", {"type": "ask.log", "room": "sheet", "user": "viewer"})
            again = viewer.wait_for(is_reply("log"))
            assert again["chat"] == []
            # The editor's next change is the first the editor hears of: nothing
            # of the viewer's came before it.
            assert app.post("/_/sheet", content="set C1 value n 3",
                            headers={**EDITOR, **COMMAND}).status_code == 202
            assert editor.wait_for(is_reply("execute"))["cmdstr"] == "set C1 value n 3"
        assert a1(app) == 42
        assert app.get("/_/sheet/cells/B1").json()["datavalue"] == "live"
        assert app.get("/_exists/other").json() is False
        assert app.get("/_exists/third").json() is False

        # The polling transport ends in the same check.
        polling = PollingClient(app, VIEWER)
        assert polling.emit("data", execute("set A1 value n 8")).status_code == 200
        polling.emit("data", {"type": "ask.log", "room": "sheet", "user": "viewer"})
        assert "cell:A1:v:42" in polling.wait_for(is_reply("log"))["snapshot"]
        assert a1(app) == 42
        # A connection follows the permissions of its latest request: an editor who
        # becomes a viewer cannot go on editing over the connection opened before.
        polling = PollingClient(app, EDITOR)
        polling.emit("data", execute("set D1 value n 1"))
        polling.emit("data", {"type": "ask.log", "room": "sheet", "user": "editor"})
        polling.wait_for(is_reply("log"))
        assert app.get("/_/sheet/cells/D1").json()["datavalue"] == 1
        polling.headers = VIEWER
        polling.emit("data", execute("set D1 value n 2"))
        polling.emit("data", {"type": "ask.log", "room": "sheet", "user": "viewer"})
        loaded = polling.wait_for(is_reply("log"))
        assert "set D1 value n 2" not in loaded["log"] and "D1:v:2" not in loaded["snapshot"]
        assert app.get("/_/sheet/cells/D1").json()["datavalue"] == 1

    stopped = grain_server.client.post(f"/api/v1/grains/{gid}/stop")
    assert stopped.json()["state"] == "stopped"
    with grain_http(grain_server.run(gid)) as app:
        assert a1(app) == 42
        assert app.get("/_/sheet/cells/B1").json()["datavalue"] == "live"
        assert app.get("/_exists/other").json() is False
        assert app.get("/_exists/third").json() is False
        assert app.get("/_/sheet/cells/C1").json()["datavalue"] == 3


def cell(frame: Frame, coord: str):
    """The grid cell ``coord`` ("A1") of EtherCalc's page (the page also holds a
    hidden grid of form data with the same IDs)."""
    return frame.locator(f"td#cell_{coord}:visible")


def loaded(frame: Frame) -> Frame:
    """``frame`` once EtherCalc's page has the sheet from the grain over its socket
    (player.js sets ``SocialCalc.hadSnapshot`` on the answer): typing before that
    would go nowhere."""
    frame.wait_for_function("window.SocialCalc && SocialCalc.hadSnapshot === true")
    return frame


# How long a change may take to reach another open page. A broadcast arrives in
# milliseconds on a quiet machine; the bound only keeps a loaded one from failing.
LIVE_MS = 15_000


def on_websocket(frame: Frame) -> None:
    """Waits until the page's socket.io connection runs over a WebSocket."""
    frame.wait_for_function("Object.values(io.managers).some(m => m.engine"
                            " && m.engine.transport.name === 'websocket')")


def type_into(frame: Frame, coord: str, text: str) -> None:
    """Select cell ``coord``, type ``text`` and press Enter on the keyboard. The cell
    is selected through SocialCalc's editor rather than by a click: SocialCalc maps
    clicks to cells with positions it measured when it last drew the grid, which
    can be off until it draws again."""
    frame.wait_for_function("!window.spreadsheet.editor.busy")
    frame.evaluate("coord => { const editor = window.spreadsheet.editor;"
                   " SocialCalc.KeyboardSetFocus(editor); editor.MoveECell(coord); }", coord)
    assert frame.evaluate("window.spreadsheet.editor.ecell.coord") == coord
    frame.page.keyboard.type(text)
    frame.page.keyboard.press("Enter")


def wait_stored(frame: Frame, coord: str, value: str) -> None:
    """Waits until the grain stores ``value`` (as text) in cell ``coord``."""
    frame.wait_for_function(
        f"fetch('_/sheet/cells/{coord}').then(r => r.text())"
        f".then(t => t !== '' && String(JSON.parse(t).datavalue) === {value!r})", polling=200)


def server_value(frame: Frame, coord: str) -> object:
    """The cell's value as the grain stores it (EtherCalc's HTTP API, from the page)."""
    return frame.evaluate(
        f"fetch('_/sheet/cells/{coord}').then(r => r.text())"
        ".then(t => t ? JSON.parse(t).datavalue : null)")


def test_two_users_edit_live_and_a_viewer_cannot_change_the_sheet(
        app_server: AppServer, recipes: RecipeCache, browser):
    """Alice (owner) and Bob (editor share) in two browser contexts on one grain;
    Carol with a viewer share. Every step goes through the gateway on session hosts."""
    app_server.install(recipes.get("ethercalc"))
    alice = dev_login(browser, app_server.url, "Alice Dev")
    sheet = loaded(new_grain(alice, "New spreadsheet"))
    grain_page = alice.url
    type_into(sheet, "A1", "Rent")
    type_into(sheet, "B1", "1200")
    wait_stored(sheet, "B1", "1200")

    # Bob opens an editor link: each sees the other's changes as they are made.
    bob = dev_login(browser, app_server.url, "Bob Dev")
    bobs = loaded(open_link(bob, share_link(alice, "can edit", "Bob"), as_name="Bob Dev"))
    alice.goto(grain_page)  # sharing left the grain page with its Share panel open
    sheet = loaded(grain_frame(alice))
    expect(cell(bobs, "A1")).to_have_text("Rent")
    # socket.io starts with long-polling; through the gateway it moves to a WebSocket.
    # Both pages finish that move before the live part: a change made while a page is
    # between transports reaches it once the upgrade settles, seconds later on a
    # loaded machine.
    on_websocket(bobs)
    on_websocket(sheet)
    type_into(bobs, "A2", "Power")
    wait_stored(bobs, "A2", "Power")
    expect(cell(sheet, "A2")).to_have_text("Power", timeout=LIVE_MS)
    type_into(sheet, "B2", "80")
    expect(cell(bobs, "B2")).to_have_text("80", timeout=LIVE_MS)
    type_into(sheet, "B3", "=B1+B2")
    expect(cell(bobs, "B3")).to_have_text("1280", timeout=LIVE_MS)

    # Carol opens a viewer link: she sees the sheet, in EtherCalc's view mode.
    carol = dev_login(browser, app_server.url, "Carol Dev")
    carols = loaded(open_link(carol, share_link(alice, "can view", "Carol"),
                              as_name="Carol Dev"))
    alice.goto(grain_page)
    sheet = loaded(grain_frame(alice))
    assert carols.url.endswith("/sheet/view")
    expect(cell(carols, "B3")).to_have_text("1280")
    on_websocket(carols)
    type_into(sheet, "C1", "monthly")
    expect(cell(carols, "C1")).to_have_text("monthly", timeout=LIVE_MS)  # live, in view mode
    # The grain refuses her changes even from EtherCalc's editing page: over HTTP...
    assert carols.evaluate(
        "fetch('_/sheet', {method: 'POST', headers: {'Content-Type': 'text/plain'},"
        " body: 'set A1 text t Carol'}).then(r => r.status)") == 403
    carols.goto(re.sub(r"/sheet/view$", "/sheet", carols.url))
    loaded(carols)
    expect(cell(carols, "B3")).to_have_text("1280")
    # ...and over the socket: her page shows her typing until it asks the grain for
    # the sheet again (on the same socket, so after her change was handled).
    type_into(carols, "A1", "Carol was here")
    expect(cell(carols, "A1")).to_have_text("Carol was here")
    carols.evaluate("SocialCalc.hadSnapshot = false; SocialCalc.Callbacks.broadcast('ask.log')")
    expect(cell(carols, "A1")).to_have_text("Rent")
    assert server_value(sheet, "A1") == "Rent"
    expect(cell(sheet, "A1")).to_have_text("Rent")

    # The sheet is stored: after a reload and after the grain stops and starts.
    alice.reload()
    sheet = loaded(grain_frame(alice))
    expect(cell(sheet, "B3")).to_have_text("1280")
    sheet = loaded(stop_and_reopen(alice))
    expect(cell(sheet, "A2")).to_have_text("Power")
    expect(cell(sheet, "B3")).to_have_text("1280")
    assert server_value(sheet, "B1") == 1200
    screenshot(alice, "apps/ethercalc")  # a copy is docs/using/img/ethercalc.png
