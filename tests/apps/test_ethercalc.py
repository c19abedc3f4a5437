"""The EtherCalc recipe (apps/ethercalc): built from npm with a fresh key, installed
into an in-process server, run in a real sandbox with Debian's node; driven over
its HTTP API and its socket.io channel (WebSocket and polling) through the
grain's socket."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sandhaven.packages.keys import SigningKey, write_key_file
from sandhaven.packages.spk import open_spk, verify, verify_file
from tests.apps.socketio import PollingClient, WebSocketClient
from tests.conftest import GrainServer, bearer
from tests.grains.test_grains import grain_http

RECIPE = Path(__file__).parents[2] / "apps" / "ethercalc"
SANDHAVEN = Path(sys.executable).parent / "sandhaven"
EDITOR = {"X-Sandstorm-Permissions": "edit"}
VIEWER: dict[str, str] = {}
COMMAND = {"Content-Type": "text/plain"}
A1 = "/_/sheet/cells/A1"


@pytest.fixture
def ethercalc_build_dir(app_build_root: Path) -> Path:
    return app_build_root / "ethercalc"


def build(build_dir: Path, out_dir: Path) -> tuple[Path, SigningKey]:
    key = SigningKey.generate()
    write_key_file(key, out_dir / "ethercalc.key")
    spk = out_dir / "ethercalc.spk"
    subprocess.run([str(RECIPE / "build.sh"), str(out_dir / "ethercalc.key"), str(spk),
                    str(build_dir)], check=True, timeout=180,
                   env={"PATH": "/usr/bin:/bin", "SANDHAVEN": str(SANDHAVEN),
                        "HOME": str(build_dir)})
    return spk, key


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
        ethercalc_build_dir, tmp_path):
    spk, key = build(ethercalc_build_dir, tmp_path)
    assert verify_file(spk)["app_id"] == key.app_id
    with open_spk(spk) as f:
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
        grain_server: GrainServer, ethercalc_build_dir, tmp_path, grain_logs):
    spk, key = build(ethercalc_build_dir, tmp_path)
    app_id = grain_server.services.packages.install(spk).app_id
    assert app_id == key.app_id
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

        # The polling transport ends in the same check.
        polling = PollingClient(app, VIEWER)
        assert polling.emit("data", execute("set A1 value n 8")).status_code == 200
        polling.emit("data", {"type": "ask.log", "room": "sheet", "user": "viewer"})
        assert "cell:A1:v:42" in polling.wait_for(is_reply("log"))["snapshot"]
        assert a1(app) == 42

    stopped = grain_server.client.post(f"/api/v1/grains/{gid}/stop")
    assert stopped.json()["state"] == "stopped"
    with grain_http(grain_server.run(gid)) as app:
        assert a1(app) == 42
        assert app.get("/_/sheet/cells/B1").json()["datavalue"] == "live"
        assert app.get("/_/sheet/cells/C1").json()["datavalue"] == 3
