"""Sharing a real TiddlyWiki grain read-only, in Chromium: the second user's wiki
knows it is read-only, an edit made in TiddlyWiki's own editor is never stored,
and a save sent anyway is refused by the grain."""

from __future__ import annotations

from playwright.sync_api import Frame, Page, expect

from tests.apps.conftest import AppServer, RecipeCache
from tests.conftest import GrainServer, bearer
from tests.grains.test_grains import grain_http
from tests.ui import (
    SESSION_HOST,
    dev_login,
    grain_frame,
    new_grain,
    open_link,
    screenshot,
    share_link,
)

TIDDLERS = "recipes/default/tiddlers"
# TiddlyWiki's own idea of the wiki: whether it is read-only, and whether every
# change made in the browser has been dealt with by its syncer.
READ_ONLY = "() => $tw.wiki.getTiddlerText('$:/status/IsReadOnly') === 'yes'"
SETTLED = "() => !$tw.syncer.isDirty()"


def _edit(wiki: Frame, title: str, text: str) -> None:
    """Create a tiddler with TiddlyWiki's keyboard shortcuts and editor: new tiddler
    (Alt+N), title, text, confirm (Ctrl+Enter). Shortcuts work where a read-only
    wiki hides the buttons."""
    wiki.locator("body").press("Alt+N")
    wiki.locator("input.tc-titlebar").fill(title)
    editor = wiki.frame_locator("iframe.tc-edit-texteditor").locator("textarea")
    editor.fill(text)
    editor.press("Control+Enter")
    wiki.wait_for_function(f"() => $tw.wiki.tiddlerExists({title!r})")


def _write(page: Page, wiki: Frame, title: str, text: str) -> None:
    """:func:`_edit`, waiting for the wiki's own save of it to be stored (204)."""
    url = f"/{TIDDLERS}/{title.replace(' ', '%20')}"
    with page.expect_response(lambda r: r.request.method == "PUT" and r.url.endswith(url),
                              timeout=30_000) as answer:
        _edit(wiki, title, text)
    assert answer.value.status == 204, answer.value.status


def _stored(wiki: Frame) -> list[tuple[str, str]]:
    """Every tiddler the grain stores, as (title, revision), sorted."""
    listed = wiki.evaluate(f"fetch('{TIDDLERS}.json').then(r => r.json())")
    return sorted((t["title"], str(t.get("revision", ""))) for t in listed)


def test_a_read_only_link_to_a_tiddlywiki_grain_cannot_save(
        app_server: AppServer, recipes: RecipeCache, browser):
    app_server.install(recipes.get("tiddlywiki"))
    alice = dev_login(browser, app_server.url)
    wiki = new_grain(alice, "New wiki")
    _write(alice, wiki, "Alice note", "written by Alice")
    link = share_link(alice, "can view", "readers")
    before = _stored(grain_frame(alice))
    assert "Alice note" in {title for title, _ in before}

    # Bob opens the link as himself: his wiki is read-only (no editing buttons).
    bob = dev_login(browser, app_server.url, "Bob Dev")
    writes: list[str] = []  # what the wiki sends that could change the grain
    bob.on("request", lambda r: writes.append(f"{r.method} {r.url}")
           if SESSION_HOST.match(r.url) and r.method not in ("GET", "HEAD", "OPTIONS")
           else None)
    bob_wiki = open_link(bob, link, "Bob Dev")
    bob_wiki.wait_for_function(READ_ONLY)
    expect(bob_wiki.get_by_role("button", name="new tiddler", exact=True)).to_be_hidden()
    # He writes a tiddler in TiddlyWiki's own editor anyway: it lives in his
    # browser only, nothing is sent, and a reload shows it never was stored.
    _edit(bob_wiki, "Bob was here", "should not be saved")
    bob_wiki.wait_for_function(SETTLED)
    assert writes == []
    assert bob_wiki.evaluate(
        f"fetch('{TIDDLERS}/Bob%20was%20here').then(r => r.status)") == 404
    # A save sent anyway, by TiddlyWiki's own sync code told it may write (as a
    # modified or older client would), is refused by the grain.
    refused = bob_wiki.evaluate("""() => new Promise(done => {
        $tw.syncadaptor.isReadOnly = false;
        $tw.syncadaptor.saveTiddler($tw.wiki.getTiddler('Bob was here'),
                                    err => done(String(err)));
    })""")
    assert "403" in refused, refused
    bob.reload()
    bob_wiki = grain_frame(bob)
    bob_wiki.wait_for_function(READ_ONLY)
    bob_wiki.get_by_role("switch", name="Recent").click()
    expect(bob_wiki.get_by_role("link", name="Alice note").first).to_be_visible()
    expect(bob_wiki.get_by_role("link", name="Bob was here")).to_have_count(0)
    assert _stored(bob_wiki) == before
    screenshot(bob, "apps/tiddlywiki-read-only-link")

    # Alice, the owner, still saves.
    alice.reload()
    wiki = grain_frame(alice)
    assert wiki.evaluate("$tw.wiki.getTiddlerText('$:/status/IsReadOnly')") == "no"
    _write(alice, wiki, "Alice again", "still mine to change")
    body = wiki.evaluate(f"fetch('{TIDDLERS}/Alice%20again').then(r => r.json())")
    assert body["text"] == "still mine to change" and body["modifier"] == "Alice Dev"
    assert _stored(wiki) != before


def test_the_wiki_tells_viewers_it_is_read_only(grain_server: GrainServer,
                                                 recipes: RecipeCache):
    app_id = grain_server.services.packages.install(recipes.get("tiddlywiki").spk).app_id
    bearer(grain_server.client, grain_server.services, "a@example.org", "Ann")
    gid = grain_server.client.post("/api/v1/grains", json={
        "app_id": app_id, "action": 0, "title": "W"}).json()["id"]
    with grain_http(grain_server.run(gid)) as wiki:
        viewer = wiki.get("/status", headers={"X-Sandstorm-Username": "Bob",
                                              "X-Sandstorm-Permissions": ""})
        assert viewer.status_code == 200
        assert viewer.json()["read_only"] is True and viewer.json()["username"] == "Bob"
        assert int(viewer.headers["content-length"]) == len(viewer.content)
        editor = wiki.get("/status?x=1", headers={"X-Sandstorm-Permissions": "edit"})
        assert editor.json()["read_only"] is False
