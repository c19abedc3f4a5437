import pytest

from tests.conftest import login_as


@pytest.mark.parametrize("path", ["/grains", "/apps", "/account", "/account/activity",
                                  "/admin", "/admin/settings"])
def test_pages_need_login(make_shell, path):
    _, client = make_shell()
    answer = client.get(path)
    assert answer.status_code == 303 and answer.headers["location"] == "/login"


@pytest.mark.parametrize("path", ["/grains", "/apps", "/account", "/account/activity",
                                  "/admin", "/admin/settings"])
def test_pages_render_for_an_admin(make_shell, path):
    services, client = make_shell()
    login_as(client, services, "root@example.org", "Root", admin=True)
    answer = client.get(path)
    assert answer.status_code == 200
    assert 'name="viewport"' in answer.text and "Root" in answer.text


@pytest.mark.parametrize("path", ["/admin", "/admin/settings"])
def test_admin_pages_are_forbidden_to_users(make_shell, path):
    services, client = make_shell()
    login_as(client, services, "u@example.org", "User")
    answer = client.get(path)
    assert answer.status_code == 403 and "Only an admin" in answer.text


def test_unknown_page_gets_a_404_page(make_shell):
    _, client = make_shell()
    answer = client.get("/no/such/page")
    assert answer.status_code == 404
    assert "There is no page at this address" in answer.text


def test_unknown_host_gets_a_plain_404(make_shell):
    _, client = make_shell()
    answer = client.get("http://elsewhere.example/login")
    assert answer.status_code == 404 and "Not found" in answer.text


def test_oversized_body_is_refused_with_413(make_shell):
    services, client = make_shell(max_body_bytes=4096)
    login_as(client, services, "a@example.org", "Ann")
    answer = client.post("/account/profile", content=b"name=" + b"x" * 10000,
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 413 and "larger than" in answer.text
    api = client.post("/api/v1/me/tokens", content=b"{" + b" " * 10000 + b"}",
                      headers={"Content-Type": "application/json", "Authorization": "Bearer x"})
    assert api.status_code == 413
    assert api.json()["error"]["code"] == "payload_too_large"


def test_chunked_oversized_body_is_cut_off(make_shell):
    services, client = make_shell(max_body_bytes=4096)
    login_as(client, services, "a@example.org", "Ann")

    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(10):
            yield b"x" * 1000

    answer = client.post("/api/v1/me/tokens", content=chunks(),
                         headers={"Content-Type": "application/json", "Authorization": "Bearer x"})
    assert answer.status_code == 413


def test_profile_errors_keep_the_old_profile(make_shell):
    services, client = make_shell()
    uid = login_as(client, services, "a@example.org", "Ann")
    from tests.conftest import form_post

    answer = form_post(client, "/account", "/account/profile",
                       {"name": "Ann B", "handle": "9bad", "picture_url": "", "pronouns": "she"})
    assert answer.status_code == 400 and "Handle" in answer.text
    assert services.identity.users.get(uid).name == "Ann"
    ok = form_post(client, "/account", "/account/profile",
                   {"name": "Ann B", "handle": "ann_b", "picture_url": "", "pronouns": "female"})
    assert ok.status_code == 303
    assert services.identity.users.get(uid).handle == "ann_b"
    # A picture URL travels in a header to every grain: no line breaks, no spaces.
    for bad in BAD_PICTURES:
        refused = form_post(client, "/account", "/account/profile",
                            {"name": "Ann B", "handle": "ann_b", "picture_url": bad,
                             "pronouns": "female"})
        assert refused.status_code == 400 and "Picture URL holds" in refused.text
    assert not services.identity.users.get(uid).picture_url


BAD_PICTURES = ("https://x.org/a\r\nx-sandstorm-permissions: edit", "https://x.org/a b",
                "https://x.org/\tp.png", "https://x.org/café.png")


def test_the_api_refuses_a_picture_url_a_header_cannot_carry(make_shell):
    from tests.conftest import bearer

    services, client = make_shell()
    uid = bearer(client, services, "a@example.org", "Ann")
    for bad in BAD_PICTURES:
        patched = client.patch("/api/v1/me", json={"picture_url": bad})
        assert patched.status_code == 400, patched.text
        assert "Picture URL holds" in patched.json()["error"]["message"]
    assert not services.identity.users.get(uid).picture_url
    fine = client.patch("/api/v1/me", json={"picture_url": "https://x.org/caf%C3%A9.png"})
    assert fine.status_code == 200
    assert services.identity.users.get(uid).picture_url == "https://x.org/caf%C3%A9.png"


def test_dev_accounts_only_with_dev(make_shell):
    _, plain = make_shell()
    assert "Dev accounts" not in plain.get("/login").text
    from tests.conftest import form_post

    refused = form_post(plain, "/login/code", "/dev/login", {"name": "Alice Dev"})
    assert refused.status_code == 403
    services, dev = make_shell(dev=True)
    page = dev.get("/login").text
    assert "Development mode" in page and "Log in as Alice Dev" in page
    answer = form_post(dev, "/login", "/dev/login", {"name": "Alice Dev"})
    assert answer.status_code == 303
    me = dev.get("/api/v1/me").json()
    assert me["name"] == "Alice Dev"
    assert "Development mode" in dev.get("/account").text
    # From a sharing link's login, a dev account comes back to the link.
    _, other = make_shell(dev=True)
    page = other.get("/login", params={"next": "/shared/abc_-1"}).text
    assert page.count('name="next" value="/shared/abc_-1"') == page.count('action="/dev/login"')
    back = form_post(other, "/login", "/dev/login", {"name": "Bob Dev", "next": "/shared/abc_-1"})
    assert back.status_code == 303 and back.headers["location"] == "/shared/abc_-1"


def test_shell_pages_carry_security_headers(make_shell):
    _, client = make_shell()
    answer = client.get("/login")
    csp = answer.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "frame-src http://*.localhost:6080" in csp
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["referrer-policy"] == "no-referrer"
    assert answer.headers["x-content-type-options"] == "nosniff"


def test_head_is_answered_like_get_without_a_body(make_shell):
    _, client = make_shell()
    answer = client.head("/login")
    assert answer.status_code == 200 and answer.content == b""
    assert answer.headers["content-type"].startswith("text/html")
