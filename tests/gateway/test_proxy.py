"""The proxy end to end: real gateway process, real grain on a Unix socket."""

from __future__ import annotations

import select
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from sandhaven.testing.http_grain import pattern_bytes
from sandhaven.testing.servers import Gateway, run_gateway, run_grain


def echoed(response: httpx.Response) -> dict[str, list[str]]:
    assert response.status_code == 200, response.text
    out: dict[str, list[str]] = {}
    for name, value in response.json()["headers"]:
        out.setdefault(name, []).append(value)
    return out


def test_identity_headers_exact(gateway: Gateway) -> None:
    with gateway.client() as c:
        headers = echoed(c.get("/headers"))
    origin = f"http://{gateway.session_host}"
    assert headers["x-sandstorm-user-id"] == ["0ba26e59c64ec75dedbc11679f267a40"]
    assert headers["x-sandstorm-username"] == ["Ren%C3%A9e%20Dupont%20%E6%9D%8E%E5%B0%8F%E9%BE%8D"]
    assert headers["x-sandstorm-preferred-handle"] == ["renee"]
    assert headers["x-sandstorm-user-picture"] == ["https://localhost:6080/pictures/renee.png"]
    assert headers["x-sandstorm-user-pronouns"] == ["female"]
    assert headers["x-sandstorm-permissions"] == ["edit,comment"]
    assert headers["x-sandstorm-session-id"] == ["b2d7c5a1e0f94d3c8a6b"]
    assert headers["x-sandstorm-tab-id"] == ["5f0c1a9e7d3b48a2b6c4e8f0a1b2c3d4"]
    assert headers["x-sandstorm-session-type"] == ["normal"]
    assert headers["x-sandstorm-base-path"] == [origin]
    assert headers["host"] == [gateway.session_host]
    assert headers["x-forwarded-proto"] == ["http"]
    assert "x-sandstorm-api" not in headers


def test_non_ascii_username_round_trips(gateway: Gateway) -> None:
    from urllib.parse import unquote

    with gateway.client() as c:
        headers = echoed(c.get("/headers"))
    assert unquote(headers["x-sandstorm-username"][0]) == "Renée Dupont 李小龍"


def test_forged_sandstorm_headers_never_arrive(gateway: Gateway) -> None:
    forged = {
        "X-Sandstorm-User-Id": "ffffffffffffffffffffffffffffffff",
        "X-Sandstorm-Permissions": "admin",
        "x-sandstorm-username": "Mallory",
        "X-Sandstorm-App-Thing": "1",
        "X-Sandstorm-Passthrough": "address",
        "Authorization": "Bearer stolen",
        "Origin": "https://evil.example",
        "Referer": "https://evil.example/page",
        "Via": "1.1 evil",
        "Proxy-Authorization": "x",
        "DNT": "1",
        "Sec-Fetch-Site": "cross-site",
        "X-Forwarded-For": "6.6.6.6",
        "X-Forwarded-Host": "evil.example",
        "Forwarded": "for=6.6.6.6",
        "Access-Control-Request-Method": "PUT",
        "X-Unknown-Header": "not on the allow-list",
        "Accept-Language": "fr",
        "If-None-Match": '"abc"',
        "X-Requested-With": "XMLHttpRequest",
    }
    with gateway.client() as c:
        headers = echoed(c.get("/headers", headers=forged))
    assert headers["x-sandstorm-user-id"] == ["0ba26e59c64ec75dedbc11679f267a40"]
    assert headers["x-sandstorm-permissions"] == ["edit,comment"]
    assert headers["x-sandstorm-username"] != ["Mallory"]
    sandstorm = {n for n in headers if n.startswith("x-sandstorm-")}
    assert sandstorm == {
        "x-sandstorm-user-id",
        "x-sandstorm-username",
        "x-sandstorm-preferred-handle",
        "x-sandstorm-user-picture",
        "x-sandstorm-user-pronouns",
        "x-sandstorm-permissions",
        "x-sandstorm-session-id",
        "x-sandstorm-tab-id",
        "x-sandstorm-session-type",
        "x-sandstorm-base-path",
    }
    for name in (
        "authorization",
        "origin",
        "referer",
        "via",
        "proxy-authorization",
        "dnt",
        "sec-fetch-site",
        "x-forwarded-for",
        "x-forwarded-host",
        "forwarded",
        "access-control-request-method",
        "x-unknown-header",
        "x-real-ip",
    ):
        assert name not in headers, name
    assert headers["accept-language"] == ["fr"]
    assert headers["if-none-match"] == ['"abc"']
    assert headers["x-requested-with"] == ["XMLHttpRequest"]
    for values in headers.values():
        assert all("evil" not in v and "Mallory" not in v for v in values)


def test_platform_cookies_never_reach_the_grain(gateway: Gateway) -> None:
    with gateway.client(granted=False) as c:
        response = c.get(
            "/headers",
            headers={"Cookie": "app=1; sandhaven_test=granted; SandhavenShell=secret; other=2"},
        )
    assert echoed(response)["cookie"] == ["app=1; other=2"]


def test_no_grant_is_403_and_never_reaches_the_grain(gateway: Gateway) -> None:
    with gateway.client(granted=False) as c:
        response = c.get("/headers")
    assert response.status_code == 403
    assert "x-sandstorm" not in response.text.lower()
    assert response.headers["content-security-policy"] == "default-src 'none'"


def test_unknown_host_is_plain_404(gateway: Gateway) -> None:
    for host in (
        f"evil.example:{gateway.port}",
        f"ui-{'3f' * 15}.localhost:{gateway.port}",
        f"ui-{'3F' * 16}x.localhost:{gateway.port}",
        f"x.api.localhost:{gateway.port}",
    ):
        with gateway.client(host) as c:
            response = c.get("/headers")
        assert response.status_code == 404, host
        assert "nothing at this address" in response.text


def test_header_value_with_line_break_is_refused(gateway: Gateway) -> None:
    # httpx refuses to send CR/LF itself; a raw socket sends an obs-fold-free bare CR.
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=30) as s:
        s.sendall(
            f"GET /headers HTTP/1.1\r\nHost: {gateway.session_host}\r\n"
            f"Cookie: sandhaven_test=granted\r\nAccept: a\rb\r\n\r\n".encode()
        )
        status = s.recv(65536).split(b"\r\n", 1)[0]
    assert status.split()[1] == b"400"


def test_several_set_cookie_stay_several_and_keep_to_the_host(gateway: Gateway) -> None:
    with gateway.client() as c:
        response = c.get("/cookies")
    cookies = response.headers.get_list("set-cookie")
    assert cookies == ["a=1; Path=/; HttpOnly", "b=2; Path=/", "c=3; Path=/; Secure"]


def test_security_headers_replace_the_grains(gateway: Gateway) -> None:
    with gateway.client() as c:
        response = c.get("/unsafe-headers")
    h = response.headers
    assert h.get_list("content-security-policy") == [h["content-security-policy"]]
    csp = h["content-security-policy"]
    assert f"frame-ancestors 'self' http://localhost:{gateway.port}" in csp
    assert "worker-src 'none'" in csp
    assert "default-src 'none'" in csp
    assert f"connect-src 'self' ws://{gateway.session_host}" in csp
    assert h["referrer-policy"] == "same-origin"
    for name in (
        "x-frame-options",
        "access-control-allow-origin",
        "access-control-allow-credentials",
        "strict-transport-security",
        "www-authenticate",
        "alt-svc",
    ):
        assert name not in h, name
    assert h["x-app-header"] == "kept"


def test_api_host(gateway: Gateway) -> None:
    with gateway.client(gateway.api_host, granted=False) as c:
        refused = c.get("/headers")
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == 'Basic realm="Sandhaven API"'
        assert refused.headers["access-control-allow-origin"] == "*"
        response = c.get(
            "/headers?x=1",
            headers={
                "Authorization": "Bearer granted",
                "Cookie": "app=1",
                "X-Sandstorm-Passthrough": "address",
            },
        )
        headers = echoed(response)
        cookies = c.get("/cookies", headers={"Authorization": "Bearer granted"})
        preflight = c.options(
            "/anything",
            headers={
                "Origin": "https://client.example",
                "Access-Control-Request-Method": "PROPFIND",
                "Access-Control-Request-Headers": "authorization, depth",
            },
        )
    assert response.json()["path"] == "/api/headers"
    assert response.json()["query"] == "x=1"
    assert headers["host"] == ["sandbox"]
    assert "x-sandstorm-base-path" not in headers
    assert "x-sandstorm-user-id" not in headers
    assert headers["x-sandstorm-username"] == ["Anonymous%20User"]
    assert headers["x-real-ip"] == ["127.0.0.1"]
    assert "cookie" not in headers and "authorization" not in headers
    assert response.headers["access-control-allow-origin"] == "*"
    assert "Authorization" in response.headers["vary"]
    assert response.headers["content-security-policy"] == "default-src 'none'; sandbox"
    assert "set-cookie" not in cookies.headers
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-methods"] == "PROPFIND"
    assert preflight.headers["access-control-allow-headers"] == "authorization, depth"


def test_range_and_head(gateway: Gateway) -> None:
    data = pattern_bytes(100_000)
    with gateway.client() as c:
        partial = c.get("/bytes?n=100000", headers={"Range": "bytes=1000-1999"})
        suffix = c.get("/bytes?n=100000", headers={"Range": "bytes=-10"})
        head = c.head("/bytes?n=100000")
        full = c.get("/bytes?n=100000")
    assert partial.status_code == 206
    assert partial.headers["content-range"] == "bytes 1000-1999/100000"
    assert partial.content == data[1000:2000]
    assert suffix.content == data[-10:]
    assert head.status_code == 200
    assert head.headers["content-length"] == "100000"
    assert head.content == b""
    assert full.headers["content-length"] == "100000"
    assert full.content == data


def test_content_length_preserved_and_chunked_passes(gateway: Gateway) -> None:
    n = 5_000_000
    with gateway.client() as c:
        with c.stream("GET", f"/download?n={n}") as r:
            assert r.headers["content-length"] == str(n)
            body = b"".join(r.iter_raw())
        with c.stream("GET", f"/download?n={n}&chunked=1") as r:
            assert "content-length" not in r.headers
            assert r.headers["transfer-encoding"] == "chunked"
            chunked = b"".join(r.iter_raw())
    assert body == chunked == pattern_bytes(n)


def test_upload_streams_through(gateway: Gateway) -> None:
    import hashlib

    data = pattern_bytes(3_000_000)
    with gateway.client() as c:
        sized = c.post("/upload", content=data).json()
        chunked = c.post("/upload", content=iter([data[:1000], data[1000:]])).json()
    expected = {"length": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert sized == {**expected, "content_length": str(len(data))}
    assert chunked == {**expected, "content_length": None}


def test_sse_arrives_event_by_event(gateway: Gateway) -> None:
    """Each event is read before the grain is even allowed to produce the next one,
    so a buffering proxy would block here (and hit the client timeout)."""
    with gateway.client() as c, c.stream("GET", "/sse?id=t1&n=3") as r:
        assert r.headers["content-type"] == "text/event-stream"
        lines = r.iter_lines()
        for i in range(3):
            if i:
                assert c.post("/release?id=t1").status_code == 200
            line = next(lines)
            assert line == f"data: event {i}"
            assert next(lines) == ""


def test_activity_hook_counts_streams(gateway: Gateway) -> None:
    def activity() -> dict[str, dict[str, int]]:
        with gateway.client(gateway.shell_host) as shell:
            return shell.get("/activity").json()

    with gateway.client() as c, c.stream("GET", "/sse?id=act&n=2") as r:
        lines = r.iter_lines()
        assert next(lines) == "data: event 0"
        assert activity()["requests"] == {"grain-1": 1}
        c.post("/release?id=act")
        assert list(lines)[-2] == "data: event 1"
    # The SSE request and the /release one are both finished now.
    assert activity()["requests"] == {}


def test_grain_killed_mid_download_gives_client_an_error(tmp_path: Path) -> None:
    with run_grain(tmp_path) as grain, run_gateway(grain.socket_path) as gateway:
        with gateway.client() as c:
            with c.stream("GET", "/hang-after-first-chunk") as r:
                assert r.status_code == 200
                chunks = r.iter_raw()
                assert len(next(chunks)) > 0
                grain.kill()
                with pytest.raises(httpx.RemoteProtocolError):
                    for _ in chunks:
                        pass
            # The grain is gone: a clean 502 page, no detail.
            after = c.get("/headers")
        assert after.status_code == 502
        assert grain.socket_path not in after.text
        assert "Traceback" not in after.text


def test_grain_not_listening_is_502(tmp_path: Path) -> None:
    with run_gateway(str(tmp_path / "nothing.sock")) as gateway, gateway.client() as c:
        response = c.get("/headers")
    assert response.status_code == 502
    assert "nothing.sock" not in response.text


def test_concurrent_requests_share_the_pool(gateway: Gateway) -> None:
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with gateway.client() as c:
                for _ in range(50):
                    assert c.get("/small").text == "hello"
        except BaseException as exc:  # noqa: BLE001 - collected for the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors


def test_path_and_query_pass_byte_for_byte(gateway: Gateway) -> None:
    with gateway.client() as c:
        response = c.get("/headers/a%2Fb%20c;x=%7e", params={"q": "a b/ü"})
    assert response.json()["path"] == "/headers/a%2Fb%20c;x=%7e"
    assert response.json()["query"] == "q=a+b%2F%C3%BC"


def test_cross_site_post_refused_same_site_passes(gateway: Gateway) -> None:
    with gateway.client() as c:
        refused = c.post("/upload", content=b"x", headers={"Origin": "https://evil.example"})
        passed = c.post(
            "/upload", content=b"x", headers={"Origin": f"http://{gateway.session_host}"}
        )
    assert refused.status_code == 403
    assert passed.status_code == 200 and passed.json()["length"] == 1


def _wait_idle(gateway: Gateway) -> dict[str, int]:
    """The activity counters once no request is in flight; bounded by round trips
    (each one is a full request through the gateway), not by sleeping."""
    with gateway.client(gateway.shell_host) as shell:
        for _ in range(2000):
            requests = shell.get("/activity").json()["requests"]
            if not requests:
                break
    return requests


def test_browser_leaving_while_grain_is_slow_ends_the_request(gateway: Gateway) -> None:
    """Long polling: the grain has not answered, the browser gives up; the request
    must not stay in flight (it would keep the grain from idling forever)."""
    with gateway.client() as c:
        with pytest.raises(httpx.ReadTimeout):
            c.get("/slow-head?id=left", timeout=httpx.Timeout(60, read=1.5))
    assert _wait_idle(gateway) == {}
    with gateway.client() as c:
        c.post("/release?id=left")  # lets the grain's handler finish


def test_browser_leaving_a_quiet_stream_ends_the_request(gateway: Gateway) -> None:
    with gateway.client() as c, c.stream("GET", "/sse?id=quiet&n=2") as r:
        assert next(r.iter_lines()) == "data: event 0"
    assert _wait_idle(gateway) == {}
    with gateway.client() as c:
        c.post("/release?id=quiet")


def _raw_exchange(gateway: Gateway, pieces: list[bytes]) -> bytes:
    """Send ``pieces`` one by one on one connection; everything the gateway answers
    until it closes the connection (bounded: 30 s)."""
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=30) as conn:
        try:
            for piece in pieces:
                conn.sendall(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed on us mid-send: read what it said
        conn.shutdown(socket.SHUT_WR)
        received = b""
        try:
            while chunk := conn.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass  # what arrived before the reset is the answer
    return received


def test_an_oversized_request_head_gets_431_and_the_connection_closes(gateway: Gateway) -> None:
    head = f"GET /headers HTTP/1.1\r\nHost: {gateway.shell_host}\r\n".encode()
    # Before any login, on any host: headers streamed in pieces past the limit.
    answer = _raw_exchange(gateway, [head] + [b"X-Big: " + b"a" * 8000 + b"\r\n"] * 40)
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert answer.endswith(b"Request header fields too large.\n")
    # One header line that never ends.
    answer = _raw_exchange(gateway, [head, b"X-Endless: "] + [b"b" * 16384] * 10)
    assert answer.startswith(b"HTTP/1.1 431 ")
    # The same in one write (the head is measured whole once complete).
    one = head + b"X-Big: " + b"c" * 70_000 + b"\r\n\r\n"
    answer = _raw_exchange(gateway, [one])
    assert answer.startswith(b"HTTP/1.1 431 ")
    # A large but reasonable head (48 KiB of cookies) still reaches the grain.
    with gateway.client() as c:
        cookies = "; ".join(f"c{i}={'v' * 1000}" for i in range(48))
        ok = c.get("/headers", headers={"Cookie": f"sandhaven_test=granted; {cookies}"})
    assert ok.status_code == 200


def test_a_head_that_trickles_in_gets_408_and_the_connection_closes(tmp_path: Path) -> None:
    """A client sending a header line now and then (or nothing at all) cannot hold
    a connection past the head timeout (2 s here, 30 s by default)."""
    with run_grain(tmp_path) as grain, run_gateway(grain.socket_path, "--head-timeout",
                                                   "2") as gateway:
        with socket.create_connection(("127.0.0.1", gateway.port), timeout=30) as slow, \
                socket.create_connection(("127.0.0.1", gateway.port), timeout=30) as mute:
            slow.sendall(f"GET /headers HTTP/1.1\r\nHost: {gateway.session_host}\r\n".encode())
            answer = b""
            deadline = time.monotonic() + 20
            while not answer.endswith(b"too long.\n"):
                assert time.monotonic() < deadline, answer
                try:
                    slow.sendall(b"X-Drip: 1\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass
                readable, _, _ = select.select([slow], [], [], 0.5)
                if readable:
                    chunk = slow.recv(4096)
                    if not chunk:
                        break
                    answer += chunk
            assert answer.startswith(b"HTTP/1.1 408 ")
            mute.settimeout(20)
            assert mute.recv(4096).startswith(b"HTTP/1.1 408 ")
        # Requests that send their head at once are not affected.
        with gateway.client() as c:
            assert c.get("/headers").status_code == 200
