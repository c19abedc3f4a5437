"""The Radicale recipe (apps/radicale): built from PyPI with a fresh key, installed
into a server, run in a real sandbox with Debian's Python; reached through the
grain's socket with explicit identity headers, and through the API host of a real
``sandhaven serve`` by an unmodified CalDAV client with API tokens."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import caldav
import httpx
import pytest
from caldav.lib import error as caldav_error
from playwright.sync_api import expect

from sandhaven.testing import LiveServer, start_server, stop_server
from tests.apps.conftest import AppServer, RecipeCache, build_recipe, verified_manifest
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

EDITOR = {"X-Sandstorm-Permissions": "edit", "X-Sandstorm-Username": "Ren%C3%A9e%20D."}
VIEWER = {"X-Sandstorm-Permissions": "", "X-Sandstorm-Username": "Victor"}
CALENDAR = "/grain/calendar/"
CONTACTS = "/grain/contacts/"


def event(uid: str, summary: str, start: str = "20270115T090000Z") -> str:
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Sandhaven tests//EN\r\n"
            f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20261130T120000Z\r\nDTSTART:{start}\r\n"
            f"DTEND:20270115T100000Z\r\nSUMMARY:{summary}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")


def vcard(uid: str, name: str) -> str:
    return (f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:{name}\r\nN:{name};;;;\r\n"
            "EMAIL:ada@example.org\r\nEND:VCARD\r\n")


@pytest.fixture
def radicale_build_dir(app_build_root: Path) -> Path:
    return app_build_root / "radicale"



def test_the_package_is_signed_with_the_given_key_and_names_the_manifest(
        radicale_build_dir, tmp_path):
    spk, key = build_recipe("radicale", radicale_build_dir, tmp_path)
    manifest = verified_manifest(spk, key)
    assert manifest.app.title == "Radicale" and manifest.app.port == 8000
    assert manifest.app.api_path == "/"
    assert [r.permissions for r in manifest.roles] == [["edit"], []]
    assert manifest.metadata.license.spdx == "GPL-3.0-or-later"
    # Bytecode was compiled at build time, for the read-only tree.
    pycache = radicale_build_dir / "tree" / "lib" / "radicale" / "__pycache__"
    assert list(pycache.glob("__init__.cpython-*.pyc"))


def test_editors_write_events_that_survive_a_restart_and_viewers_cannot(
        grain_server: GrainServer, radicale_build_dir, tmp_path):
    spk, key = build_recipe("radicale", radicale_build_dir, tmp_path)
    app_id = grain_server.services.packages.install(spk).app_id
    assert app_id == key.app_id
    bearer(grain_server.client, grain_server.services, "a@example.org", "Ann")
    made = grain_server.client.post("/api/v1/grains", json={
        "app_id": app_id, "action": 0, "title": "Family"})
    assert made.status_code == 201
    gid = made.json()["id"]
    href = CALENDAR + "dentist.ics"
    ics = event("dentist@example.org", "Dentist")
    with grain_http(grain_server.run(gid)) as dav:
        # The calendar and address book exist from the first start, the same for all.
        found = dav.request("PROPFIND", "/grain/", headers={**VIEWER, "Depth": "1"})
        assert found.status_code == 207
        assert CALENDAR in found.text and CONTACTS in found.text
        put = dav.put(href, content=ics, headers={**EDITOR, "Content-Type": "text/calendar"})
        assert put.status_code == 201
        assert "SUMMARY:Dentist" in dav.get(href, headers=VIEWER).text
        # The overview page lists it and greets the (percent-encoded) user by name.
        page = dav.get("/", headers=EDITOR)
        assert page.status_code == 200 and "Dentist" in page.text
        assert "Hello, Renée D." in page.text and "You can change" in page.text
        assert "/grain/calendar/" in page.text and "API token" in page.text
        # A viewer can read, and every kind of write is refused by the grain.
        changed = ics.replace("Dentist", "Cancelled")
        assert dav.put(href, content=changed, headers=VIEWER).status_code == 403
        assert dav.delete(href, headers=VIEWER).status_code == 403
        for method, path in [("MKCALENDAR", "/grain/other/"), ("MKCOL", "/grain/other/"),
                             ("PROPPATCH", CALENDAR), ("MOVE", href), ("COPY", href),
                             ("POST", CALENDAR), ("BREW", CALENDAR)]:
            refused = dav.request(method, path, headers={
                **VIEWER, "Destination": CALENDAR + "moved.ics"})
            assert refused.status_code == 403, method
        assert "You can view" in dav.get("/", headers=VIEWER).text
        # Radicale itself knows the role: viewers' clients see a read-only calendar.
        def privileges(who: dict[str, str]) -> str:
            return dav.request("PROPFIND", CALENDAR, headers={**who, "Depth": "0"}, content=(
                '<?xml version="1.0"?><propfind xmlns="DAV:"><prop>'
                "<current-user-privilege-set/></prop></propfind>")).text
        assert "<write />" in privileges(EDITOR)
        assert "<read />" in privileges(VIEWER) and "write" not in privileges(VIEWER)
        # Radicale's own sharing stays off, for everyone; its web page takes 404 so.
        for who in (VIEWER, EDITOR):
            assert dav.post("/.sharing/v1/all/info", json={}, headers=who).status_code == 404
        # A client cannot choose another Radicale user or base path.
        other = dav.request("PROPFIND", "/", headers={
            **VIEWER, "Depth": "0", "X-Remote-User": "mallory",
            "Authorization": "Basic bWFsbG9yeTp4", "X-Script-Name": "/evil"})
        assert "<href>/grain/</href>" in other.text and "mallory" not in other.text
        assert "/evil" not in other.text
        assert "SUMMARY:Dentist" in dav.get(href, headers=VIEWER).text
    stopped = grain_server.client.post(f"/api/v1/grains/{gid}/stop")
    assert stopped.json()["state"] == "stopped"
    with grain_http(grain_server.run(gid)) as dav:
        assert "SUMMARY:Dentist" in dav.get(href, headers=VIEWER).text
        assert "Dentist" in dav.get("/", headers=VIEWER).text


@pytest.fixture(scope="module")
def radicale_server(recipes: RecipeCache) -> Iterator[tuple[LiveServer, str, str]]:
    """A real ``sandhaven serve`` with the recipe installed and one Radicale grain,
    shared by this module's API-host tests (each makes its own tokens and items);
    yields (server, owner's personal API token, grain ID)."""
    from sandhaven.sandbox.testing import make_runtime_root, remove_tree

    spk = recipes.get("radicale").spk
    root = make_runtime_root()  # reachable by the grain user
    data = root / "data"
    cli = [sys.executable, "-m", "sandhaven", "--data-dir", str(data)]
    live = start_server(data, "--sandbox-runtime-dir", str(root / "run"))
    try:
        for args in (["install", str(spk)], ["user", "add", "ann@example.org", "--name", "Ann"]):
            done = subprocess.run(cli + args, capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stderr
        made = subprocess.run(cli + ["token", "create", "ann@example.org"],
                              capture_output=True, text=True, timeout=60)
        assert made.returncode == 0, made.stderr
        token = made.stdout.strip().split()[-1]
        with live.client(headers={"Authorization": f"Bearer {token}"}) as api:
            app_id = api.get("/api/v1/apps").json()[0]["app_id"]
            grain = api.post("/api/v1/grains", json={"app_id": app_id, "action": 0,
                                                     "title": "Family"})
            assert grain.status_code == 201, grain.text
        yield live, token, grain.json()["id"]
    finally:
        stop_server(live)
        remove_tree(root)


def grain_token(live: LiveServer, personal: str, grain_id: str, role: int) -> str:
    """A new API token (webkey) for the grain with the role at that position."""
    with live.client(headers={"Authorization": f"Bearer {personal}"}) as api:
        made = api.post(f"/api/v1/grains/{grain_id}/api-tokens",
                        json={"role": role, "label": f"role {role}"})
    assert made.status_code == 201, made.text
    url, _, token = made.json()["webkey"].partition("#")
    assert url == f"http://api.localhost:{live.port}"
    return token


def caldav_client(live: LiveServer, token: str) -> caldav.DAVClient:
    """The CalDAV library as a calendar app would use it: the API host's URL, any
    user name and the token as password. The machine's resolver does not know
    ``*.localhost``, so the client connects to 127.0.0.1 and names the host."""
    return caldav.DAVClient(url=f"http://127.0.0.1:{live.port}/", username="ann",
                            password=token, headers={"Host": f"api.localhost:{live.port}"})


def test_a_caldav_client_creates_and_reads_events_and_a_viewer_token_cannot_write(
        radicale_server):
    live, personal, gid = radicale_server
    editor = grain_token(live, personal, gid, role=0)
    viewer = grain_token(live, personal, gid, role=1)

    with caldav_client(live, editor) as client:
        # Discovery as calendar apps do it: principal, calendar home, calendars.
        calendars = client.principal().calendars()
        assert [str(c.url).split(str(live.port), 1)[1] for c in calendars] == [CALENDAR]
        calendars[0].save_event(event("picnic@example.org", "Picnic in the park"))
        summaries = [e.icalendar_component["summary"] for e in calendars[0].events()]
        assert summaries == ["Picnic in the park"]

    with caldav_client(live, viewer) as client:
        calendar = client.principal().calendars()[0]
        assert [e.icalendar_component["summary"] for e in calendar.events()] == [
            "Picnic in the park"]
        # The grain refuses the viewer's writes (403), and the library says so.
        with pytest.raises(caldav_error.DAVError) as refused:
            calendar.save_event(event("party@example.org", "Viewer's party"))
        assert "403" in str(refused.value) or "Forbidden" in str(refused.value)
        with pytest.raises(caldav_error.DAVError) as refused:
            calendar.event_by_uid("picnic@example.org").delete()
        assert "403" in str(refused.value) or "Forbidden" in str(refused.value)
        assert [e.icalendar_component["summary"] for e in calendar.events()] == [
            "Picnic in the park"]

    # Without a token, or with a wrong one, the API host asks for credentials.
    with caldav_client(live, "not-a-token") as client, pytest.raises(
            caldav_error.AuthorizationError):
        client.principal()


def test_carddav_contacts_round_trip_over_plain_http_with_a_token(radicale_server):
    live, personal, gid = radicale_server
    token = grain_token(live, personal, gid, role=0)
    api = {"Host": f"api.localhost:{live.port}"}
    with httpx.Client(base_url=f"http://127.0.0.1:{live.port}", headers=api,
                      auth=("phone", token), timeout=30) as dav:
        well_known = dav.request("PROPFIND", "/.well-known/carddav", headers={"Depth": "0"})
        assert well_known.status_code == 301 and well_known.headers["location"] == "/"
        uid = str(uuid.uuid4())
        put = dav.put(f"{CONTACTS}{uid}.vcf", content=vcard(uid, "Ada Lovelace"),
                      headers={"Content-Type": "text/vcard"})
        assert put.status_code == 201
        query = ('<?xml version="1.0"?><C:addressbook-query xmlns:D="DAV:" '
                 'xmlns:C="urn:ietf:params:xml:ns:carddav"><D:prop><D:getetag/>'
                 '<C:address-data/></D:prop></C:addressbook-query>')
        found = dav.request("REPORT", CONTACTS, content=query,
                            headers={"Depth": "1", "Content-Type": "application/xml"})
        assert found.status_code == 207 and "FN:Ada Lovelace" in found.text
        assert "FN:Ada Lovelace" in dav.get(f"{CONTACTS}{uid}.vcf").text
        assert dav.get(f"{CONTACTS}{uid}.vcf", auth=("phone", "wrong")).status_code == 401


def test_the_calendar_in_the_browser_shows_events_from_a_caldav_client_and_viewers_cannot_edit(
        app_server: AppServer, recipes: RecipeCache, browser):
    """The grain's overview and Radicale's web page in the shell's iframe; an event
    made by a CalDAV client with a token from the shell's API token dialog is listed,
    after a reload and after a stop; a viewer sees it, and what they try to save is
    refused by the grain."""
    app_server.install(recipes.get("radicale"))
    page = dev_login(browser, app_server.url)
    calendar = new_grain(page, "New calendar and address book")
    grain_url = page.url
    expect(calendar.get_by_role("heading", name="Calendar and contacts")).to_be_visible()
    expect(calendar.get_by_text("Hello, Alice Dev.")).to_be_visible()
    expect(calendar.get_by_text("No events yet.")).to_be_visible()
    expect(calendar.get_by_role("heading", name="Connect your calendar or contacts app")
           ).to_be_visible()
    expect(calendar.locator("code", has_text="API-URL/grain/calendar/")).to_be_visible()

    # A token from the shell's dialog, as the page tells the user to make one.
    page.locator("summary", has_text="API token").click()
    page.locator("#token-role").select_option(label="editor (can edit)")
    page.locator("#token-label").fill("phone")
    page.get_by_role("button", name="Create API token").click()
    api_url, _, token = (page.locator("#webkey").text_content() or "").partition("#")
    assert api_url == f"http://api.localhost:{app_server.live.port}"
    with caldav_client(app_server.live, token) as client:
        client.principal().calendars()[0].save_event(
            event("picnic@example.org", "Picnic in the park", start="20270612T100000Z"))

    page.goto(grain_url)
    calendar = grain_frame(page)
    expect(calendar.get_by_text("Picnic in the park")).to_be_visible()
    expect(calendar.get_by_text("2027-06-12 10:00 UTC")).to_be_visible()
    screenshot(page, "apps/radicale")
    # Radicale's own page logs in as the grain's user by itself and lists the calendar.
    calendar.get_by_role("link", name="web page").click()
    titles = calendar.locator("#collectionsscene article:not(.hidden) h3.title")
    expect(titles).to_have_count(2)
    assert sorted(titles.all_inner_texts()) == ["Calendar", "Contacts"]
    calendar = stop_and_reopen(page)
    expect(calendar.get_by_text("Picnic in the park")).to_be_visible()

    # Bob, with a viewer link, sees the event. Radicale's page marks the calendar
    # read-only; what he still tries to save there, or sends from the frame, is refused.
    link = share_link(page, "can view", "Bob")
    bob = dev_login(browser, app_server.url, "Bob Dev")
    viewed = open_link(bob, link, as_name="Bob Dev")
    expect(viewed.get_by_text("Picnic in the park")).to_be_visible()
    expect(viewed.get_by_text("changes are refused")).to_be_visible()
    viewed.get_by_role("link", name="web page").click()
    card = viewed.locator("#collectionsscene article:not(.hidden)").filter(
        has=viewed.get_by_role("heading", name="Calendar", exact=True))
    expect(card.locator("[data-name=ro]")).to_be_visible()
    viewed.get_by_title("Create a new addressbook or calendar").click()
    viewed.locator("#create_displayname").fill("Bob's calendar")
    viewed.locator("#createcollectionscene").get_by_role("button", name="Create").click()
    expect(viewed.locator("#createcollectionscene .error:not(.hidden)").first
           ).to_contain_text("403")
    status = viewed.evaluate(
        "body => fetch('/grain/calendar/bob.ics', {method: 'PUT', body,"
        " headers: {'Content-Type': 'text/calendar'}}).then(r => r.status)",
        event("bob@example.org", "Bob's party"))
    assert status == 403
    with caldav_client(app_server.live, token) as client:
        calendars = client.principal().calendars()
        assert [c.get_display_name() for c in calendars] == ["Calendar"]
        assert [e.icalendar_component["summary"] for e in calendars[0].events()] == [
            "Picnic in the park"]


@pytest.mark.parametrize(("env", "message"), [
    ({"PORT": "80a"}, "launcher: cannot start: PORT has value '80a': not a TCP port"),
    ({"PORT": "70000"}, "launcher: cannot start: PORT has value '70000': not a TCP port"),
    ({"RADICALE_DIR": "var/collections"},
     "launcher: cannot start: RADICALE_DIR has value 'var/collections': not an absolute"),
    ({"RADICALE_DIR": "{file}/collections"}, "launcher: cannot start:"),
])
def test_the_launcher_refuses_bad_settings_in_one_line(recipes: RecipeCache, tmp_path,
                                                        env, message):
    recipes.get("radicale")  # assembles the tree
    tree = recipes.build_root / "radicale" / "tree"
    (tmp_path / "file").write_text("not a directory")
    env = {k: v.replace("{file}", str(tmp_path / "file")) for k, v in env.items()}
    done = subprocess.run(["/usr/bin/python3", "-I", str(tree / "launcher.py")],
                          env={"PORT": "8000", "RADICALE_DIR": str(tmp_path / "c"), **env},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert message in done.stderr and "Traceback" not in done.stderr
