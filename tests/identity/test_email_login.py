"""Email login through a real SMTP server (aiosmtpd), driven through the shell."""

from datetime import timedelta

from sqlalchemy import select, update

from sandhaven.store import utcnow
from sandhaven.store.models import LoginToken, User
from sandhaven.testing import login_code, login_link, mail_text
from tests.conftest import form_post


def _ask(client, email):  # type: ignore[no-untyped-def]
    return form_post(client, "/login", "/login", {"email": email})


def _follow_link(client, link):  # type: ignore[no-untyped-def]
    token = link.split("token=", 1)[1]
    page = client.get("/login/verify", params={"token": token})
    assert page.status_code == 200
    # Opening the link alone (a mail scanner) does not log in or use the token up.
    from sandhaven.testing import csrf_from
    return client.post("/login/verify", data={"csrf_token": csrf_from(page.text), "token": token})


def test_link_logs_in_once_and_rotates_the_session(mail_shell):
    services, client, mailbox = mail_shell
    services.identity.users.create("ana@example.org", "Ana")
    client.cookies.set("sandhaven_session", "planted-before-login")
    assert _ask(client, "Ana@Example.org").status_code == 200
    msg = mailbox.wait_for(1)[0]
    assert msg["To"] == "ana@example.org"
    link = login_link(msg)
    assert link.startswith("http://localhost:6080/login/verify?token=")
    answer = _follow_link(client, link)
    assert answer.status_code == 303 and answer.headers["location"] == "/grains"
    cookie = answer.cookies.get("sandhaven_session")
    assert cookie and cookie != "planted-before-login"
    set_cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in set_cookie and "samesite=lax" in set_cookie
    assert client.get("/api/v1/me").json()["email"] == "ana@example.org"
    # Single use: the same link again is refused with 410 and changes nothing.
    client.cookies.clear()
    again = _follow_link(client, link)
    assert again.status_code == 410
    assert "already used" in again.text
    assert "Traceback" not in again.text


def test_code_logs_in_and_wrong_codes_are_limited(mail_shell):
    services, client, mailbox = mail_shell
    services.identity.users.create("bo@example.org", "Bo")
    _ask(client, "bo@example.org")
    code = login_code(mailbox.wait_for(1)[0])
    wrong = form_post(client, "/login/code", "/login/code",
                      {"email": "bo@example.org", "code": "ZZZZ-ZZZZ"})
    assert wrong.status_code == 400 and "not right" in wrong.text
    right = form_post(client, "/login/code", "/login/code",
                      {"email": "bo@example.org", "code": code.lower()})
    assert right.status_code == 303
    assert client.get("/api/v1/me").json()["email"] == "bo@example.org"


def test_code_guessing_is_rate_limited(mail_shell):
    services, client, mailbox = mail_shell
    services.identity.users.create("cy@example.org", "Cy")
    _ask(client, "cy@example.org")
    code = login_code(mailbox.wait_for(1)[0])
    for _ in range(5):
        form_post(client, "/login/code", "/login/code",
                  {"email": "cy@example.org", "code": "AAAA-AAAA"})
    blocked = form_post(client, "/login/code", "/login/code",
                        {"email": "cy@example.org", "code": code})
    assert blocked.status_code == 429
    assert client.get("/api/v1/me").status_code == 401


def test_expired_link_is_refused_and_nothing_changes(mail_shell):
    services, client, mailbox = mail_shell
    services.identity.users.create("di@example.org", "Di")
    _ask(client, "di@example.org")
    link = login_link(mailbox.wait_for(1)[0])
    with services.store.session() as s:
        s.execute(update(LoginToken).values(expires_at=utcnow() - timedelta(seconds=1)))
    answer = _follow_link(client, link)
    assert answer.status_code == 410 and "expired" in answer.text
    assert "sandhaven_session" not in answer.cookies
    with services.store.session() as s:
        assert s.scalar(select(LoginToken)).used_at is None


def test_foreign_link_is_refused(mail_shell):
    _, client, _ = mail_shell
    answer = _follow_link(client, "http://localhost:6080/login/verify?token=" + "A" * 43)
    assert answer.status_code == 404
    assert "not valid" in answer.text


def test_at_most_three_codes_outstanding_per_address(mail_shell):
    services, client, mailbox = mail_shell
    services.identity.users.create("ed@example.org", "Ed")
    for _ in range(4):
        _ask(client, "ed@example.org")
    mails = mailbox.wait_for(4)
    first_link = login_link(mails[0])
    with services.store.session() as s:
        live = s.scalars(select(LoginToken).where(LoginToken.used_at.is_(None))).all()
    assert len(live) == 3
    assert _follow_link(client, first_link).status_code == 410
    assert _follow_link(client, login_link(mails[3])).status_code == 303


def test_login_requests_are_rate_limited_per_address(mail_shell):
    services, client, mailbox = mail_shell
    services.identity.users.create("fay@example.org", "Fay")
    statuses = [_ask(client, "fay@example.org").status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]
    assert len(mailbox.wait_for(5)) == 5


def test_unknown_address_gets_the_same_answer_and_no_login_code(mail_shell):
    services, client, mailbox = mail_shell
    answer = _ask(client, "nobody@example.org")
    assert answer.status_code == 200 and "on their way" in answer.text
    msg = mailbox.wait_for(1)[0]
    assert "invitation only" in mail_text(msg)
    assert "/login/verify" not in mail_text(msg)
    assert services.identity.users.count() == 0


def test_open_signup_creates_the_account_from_the_link(mail_shell):
    services, client, mailbox = mail_shell
    services.runtime.save({"signup_policy": "open"})
    _ask(client, "gil@example.org")
    answer = _follow_link(client, login_link(mailbox.wait_for(1)[0]))
    assert answer.status_code == 303 and answer.headers["location"].startswith("/account")
    with services.store.session() as s:
        assert s.scalar(select(User.email)) == "gil@example.org"


def test_malformed_addresses_are_refused_without_mail(mail_shell):
    _, client, mailbox = mail_shell
    for bad in ("", "not-an-address", "a@b@c", "x" * 300 + "@example.org", "a\n@example.org"):
        answer = _ask(client, bad)
        assert answer.status_code == 400, bad
        assert "Traceback" not in answer.text
    assert mailbox.messages == []


def test_suspended_user_gets_no_login_code(mail_shell):
    services, client, mailbox = mail_shell
    admin = services.identity.users.create("root@example.org", "Root", is_admin=True)
    user = services.identity.users.create("hal@example.org", "Hal")
    services.identity.users.set_suspended(admin.id, user.id, True)
    assert _ask(client, "hal@example.org").status_code == 200
    assert mailbox.messages == []


def test_without_smtp_the_login_page_says_mail_is_not_configured(make_shell):
    _, client = make_shell()
    page = client.get("/login")
    assert "no outgoing mail configured" in page.text
    answer = form_post(client, "/login/code", "/login", {"email": "a@example.org"})
    assert answer.status_code == 502 and "not configured" in answer.text
