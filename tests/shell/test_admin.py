import re

from sandhaven.testing import csrf_from, mail_text
from tests.conftest import form_post, login_as


def test_email_invitation_creates_an_account(mail_shell):
    services, client, mailbox = mail_shell
    login_as(client, services, "root@example.org", "Root", admin=True)
    answer = form_post(client, "/admin", "/admin/invites",
                       {"email": "new@example.org", "note": "Welcome aboard"})
    assert answer.status_code == 303
    msg = mailbox.wait_for(1)[0]
    assert msg["To"] == "new@example.org" and "Welcome aboard" in mail_text(msg)
    link = re.search(r"http://localhost:6080(/invite/\S+)", mail_text(msg)).group(1)
    visitor = client.__class__(client.app, base_url="http://localhost:6080",
                               follow_redirects=False)
    page = visitor.get(link)
    assert page.status_code == 200 and "new@example.org" in page.text
    done = visitor.post(link, data={"csrf_token": csrf_from(page.text), "name": "Newton"})
    assert done.status_code == 303
    assert visitor.get("/api/v1/me").json()["email"] == "new@example.org"
    again = visitor.get(link)
    assert again.status_code == 410 and "already used" in again.text


def test_link_invitation_confirms_the_address_by_mail(mail_shell):
    services, client, mailbox = mail_shell
    login_as(client, services, "root@example.org", "Root", admin=True)
    answer = form_post(client, "/admin", "/admin/invites", {"email": "", "note": ""})
    assert answer.status_code == 200
    link = re.search(r'id="invite-link">http://localhost:6080(/invite/[^<]+)<', answer.text)
    visitor = client.__class__(client.app, base_url="http://localhost:6080",
                               follow_redirects=False)
    page = visitor.get(link.group(1))
    sent = visitor.post(link.group(1), data={"csrf_token": csrf_from(page.text),
                                             "name": "Lin", "email": "lin@example.org"})
    assert sent.status_code == 200 and "confirmation link" in sent.text
    assert services.identity.users.find_by_email("lin@example.org") is None
    from sandhaven.testing import login_link
    token = login_link(mailbox.wait_for(1)[0]).split("token=")[1]
    verify = visitor.get("/login/verify", params={"token": token})
    done = visitor.post("/login/verify", data={"csrf_token": csrf_from(verify.text),
                                               "token": token})
    assert done.status_code == 303
    assert visitor.get("/api/v1/me").json()["name"] == "Lin"
    # The invitation is used up.
    assert visitor.get(link.group(1)).status_code == 410


def test_suspension_logs_the_user_out_at_once(make_shell):
    services, admin_client = make_shell()
    login_as(admin_client, services, "root@example.org", "Root", admin=True)
    user_client = admin_client.__class__(admin_client.app, base_url="http://localhost:6080",
                                         follow_redirects=False)
    uid = login_as(user_client, services, "u@example.org", "User")
    _, token = services.identity.tokens.create(uid, "script")
    assert user_client.get("/api/v1/me").status_code == 200
    answer = form_post(admin_client, "/admin", f"/admin/users/{uid}", {"action": "suspend"})
    assert answer.status_code == 303
    assert user_client.get("/api/v1/me").status_code == 401
    assert user_client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}
                           ).status_code == 401
    form_post(admin_client, "/admin", f"/admin/users/{uid}", {"action": "unsuspend"})
    assert user_client.get("/api/v1/me").status_code == 401  # sessions stay ended
    assert user_client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}
                           ).status_code == 200


def test_make_admin_and_delete(make_shell):
    services, client = make_shell()
    login_as(client, services, "root@example.org", "Root", admin=True)
    uid = services.identity.users.create("u@example.org", "User").id
    form_post(client, "/admin", f"/admin/users/{uid}", {"action": "admin"})
    assert services.identity.users.get(uid).is_admin
    form_post(client, "/admin", f"/admin/users/{uid}", {"action": "delete"})
    assert services.identity.users.find(uid) is None


def test_admin_cannot_suspend_or_demote_themselves(make_shell):
    services, client = make_shell()
    me = login_as(client, services, "root@example.org", "Root", admin=True)
    answer = form_post(client, "/admin", f"/admin/users/{me}", {"action": "suspend"})
    assert answer.status_code == 409
    assert not services.identity.users.get(me).suspended


def test_unknown_action_or_user_is_a_clear_error(make_shell):
    services, client = make_shell()
    login_as(client, services, "root@example.org", "Root", admin=True)
    assert form_post(client, "/admin", "/admin/users/nobody",
                     {"action": "suspend"}).status_code == 404
    uid = services.identity.users.create("u@example.org", "User").id
    assert form_post(client, "/admin", f"/admin/users/{uid}",
                     {"action": "explode"}).status_code == 400


def test_settings_are_validated_all_or_nothing(make_shell):
    services, client = make_shell()
    login_as(client, services, "root@example.org", "Root", admin=True)
    bad = form_post(client, "/admin/settings", "/admin/settings",
                    {"signup_policy": "open", "smtp.host": "mail.example.org",
                     "smtp.port": "not-a-port", "smtp.security": "none"})
    assert bad.status_code == 400 and "smtp.port" in bad.text
    assert services.runtime.effective().signup_policy == "invite"
    good = form_post(client, "/admin/settings", "/admin/settings",
                     {"signup_policy": "open", "smtp.host": "mail.example.org",
                      "smtp.port": "587", "smtp.security": "starttls", "smtp.password": "pw"})
    assert good.status_code == 303
    eff = services.runtime.effective()
    assert (eff.signup_policy, eff.smtp_host, eff.smtp_port) == ("open", "mail.example.org", 587)
    assert eff.smtp_password == "pw"
    # Leaving the password empty keeps it.
    form_post(client, "/admin/settings", "/admin/settings",
              {"smtp.host": "mail.example.org", "smtp.password": ""})
    assert services.runtime.effective().smtp_password == "pw"


def test_invitation_mail_failure_leaves_no_invitation(make_shell):
    services, client = make_shell(smtp_host="127.0.0.1", smtp_port=1)
    login_as(client, services, "root@example.org", "Root", admin=True)
    answer = form_post(client, "/admin", "/admin/invites", {"email": "x@example.org"})
    assert answer.status_code == 502 and "Could not send mail" in answer.text
    assert services.identity.invites.list() == []


def test_test_mail_reaches_the_smtp_server(mail_shell):
    services, client, mailbox = mail_shell
    login_as(client, services, "root@example.org", "Root", admin=True)
    answer = form_post(client, "/admin/settings", "/admin/settings/test-mail", {})
    assert answer.status_code == 303
    assert mailbox.wait_for(1)[0]["Subject"] == "Sandhaven test mail"


def test_invitation_form_errors_show_the_form_again(make_shell):
    services, client = make_shell()
    admin = services.identity.users.create("root@example.org", "Root", is_admin=True)
    services.identity.users.create("taken@example.org", "Taken")
    _, token = services.identity.invites.create(admin.id, None)
    for bad in ({"name": "", "email": "x@example.org"},
                {"name": "X", "email": "not-an-email"},
                {"name": "X\x01", "email": "x@example.org"}):
        answer = form_post(client, f"/invite/{token}", f"/invite/{token}", bad)
        assert answer.status_code == 400, bad
        assert "Create account" in answer.text
    taken = form_post(client, f"/invite/{token}", f"/invite/{token}",
                      {"name": "X", "email": "taken@example.org"})
    assert taken.status_code == 409 and "log in instead" in taken.text
    assert services.identity.invites.peek(token).state == "open"


def test_inviting_an_existing_user_is_refused(make_shell):
    services, client = make_shell(smtp_host="127.0.0.1")
    login_as(client, services, "root@example.org", "Root", admin=True)
    services.identity.users.create("taken@example.org", "Taken")
    answer = form_post(client, "/admin", "/admin/invites", {"email": "Taken@example.org"})
    assert answer.status_code == 409 and "already has an account" in answer.text
    assert services.identity.invites.list() == []


def test_delete_asks_for_confirmation_first(make_shell):
    services, client = make_shell()
    login_as(client, services, "root@example.org", "Root", admin=True)
    uid = services.identity.users.create("u@example.org", "User").id
    page = client.get(f"/admin/users/{uid}/delete")
    assert page.status_code == 200 and "Delete User?" in page.text
    assert services.identity.users.find(uid) is not None
    assert client.get("/admin/users/nobody/delete").status_code == 404


def test_huge_ids_are_not_found_not_errors(make_shell):
    services, client = make_shell()
    login_as(client, services, "root@example.org", "Root", admin=True)
    big = "9" * 30
    token = csrf_from(client.get("/admin").text)
    for path in (f"/admin/invites/{big}/revoke", f"/account/tokens/{big}/revoke"):
        answer = client.post(path, data={"csrf_token": token})
        assert answer.status_code in (400, 404, 422), path
        assert "Something went wrong" not in answer.text
    api = client.delete(f"/api/v1/me/tokens/{big}", headers={"X-CSRF-Token": token})
    assert api.status_code == 422
