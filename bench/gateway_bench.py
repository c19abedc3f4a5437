"""Gateway benchmark: small-response throughput and latency, and a 1 GiB download.

Compared, with the same trivial grain (``sandhaven.testing.http_grain``, one
uvicorn process, uvloop + httptools) behind the same Unix socket:

(a) **direct** — wrk to a TCP listener *of the same grain process*. wrk cannot
    speak to a Unix socket, and a socat front would measure socat's relay (a
    fork per connection and a copy per byte, field-notes.md) rather than the
    app; a second listener in the same process measures the app's own ceiling
    with no proxy at all.
(b) **nginx** as reverse proxy to the Unix socket, HTTP/1.1 with a keep-alive
    upstream pool, ``worker_processes 1`` because the gateway is one process
    (DESIGN.md: one process holds gateway, shell and supervisor); nginx with
    ``worker_processes auto`` is measured too and reported for reference.
(c) the **Sandhaven gateway** under uvicorn (uvloop + httptools), the full
    stack (forwarded-header check, host routing, resolver, header rules) with a
    valid session grant.

wrk: 64 connections, 2 threads, ``--latency``, a warm-up run, then the measured
run. Streaming: ``curl`` downloads 1 GiB with Content-Length to /dev/null.
Everything shares the machine's cores with wrk and the grain: the figures are
ratios on one machine, not absolutes.

Run: ``.venv/bin/python bench/gateway_bench.py [--duration 10]``; needs Debian's
``wrk``, ``nginx-light`` and ``curl`` (scripts/apt-packages.txt).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SESSION_LABEL = "ui-" + "3f" * 16
GIB = 1 << 30


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int

    def row(self, name: str) -> str:
        return f"| {name} | {self.rps:,.0f} | {self.p50_ms:.2f} | {self.p99_ms:.2f} |"


def _listen_tcp() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(1024)
    return s


def _free_port() -> int:
    with _listen_tcp() as s:
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@contextlib.contextmanager
def grain(directory: Path) -> Iterator[tuple[str, int]]:
    """The grain on a Unix socket and a TCP port, one process. Yields (socket, port)."""
    path = str(directory / "grain.sock")
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind(path)
    unix.listen(1024)
    tcp = _listen_tcp()
    port = tcp.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandhaven.testing.http_grain",
         "--fd", str(unix.fileno()), "--fd", str(tcp.fileno())],
        pass_fds=[unix.fileno(), tcp.fileno()])
    unix.close()
    tcp.close()
    try:
        yield path, port
    finally:
        _stop(proc)


NGINX_CONF = """
daemon off;
master_process on;
worker_processes {workers};
pid {dir}/nginx.pid;
error_log stderr error;
{user}
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream grain {{
        server unix:{socket};
        keepalive 128;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=1024;
        location / {{
            proxy_pass http://grain;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_buffering off;
            proxy_request_buffering off;
        }}
    }}
}}
"""


@contextlib.contextmanager
def nginx(directory: Path, socket_path: str, workers: str) -> Iterator[int]:
    port = _free_port()
    conf_dir = directory / f"nginx-{workers}"
    conf_dir.mkdir()
    conf = conf_dir / "nginx.conf"
    user = "user root;" if os.geteuid() == 0 else ""
    conf.write_text(NGINX_CONF.format(workers=workers, dir=conf_dir, socket=socket_path,
                                      port=port, user=user))
    proc = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(conf_dir)])
    try:
        _wait_http(port)
        yield port
    finally:
        _stop(proc)


@contextlib.contextmanager
def gateway(socket_path: str) -> Iterator[int]:
    listener = _listen_tcp()
    port = listener.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandhaven.testing.gateway_server", "--fd",
         str(listener.fileno()), "--socket", socket_path,
         "--base-url", f"http://localhost:{port}", "--wildcard", f"*.localhost:{port}"],
        pass_fds=[listener.fileno()])
    listener.close()
    try:
        yield port
    finally:
        _stop(proc)


def _wait_http(port: int) -> None:
    """Readiness: a TCP connect succeeds (bounded: 10 s)."""
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)  # nginx binds asynchronously; nothing to wait on but the port


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(url: str, headers: list[str], duration: int) -> WrkResult:
    args = ["wrk", "-t2", "-c64", f"-d{duration}s", "--latency", "--timeout", "10s"]
    for h in headers:
        args += ["-H", h]
    out = subprocess.run(args + [url], check=True, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock_errors = re.search(r"Socket errors: (.*)", out)
    if sock_errors:
        print(f"  wrk socket errors: {sock_errors.group(1)}", file=sys.stderr)
    return WrkResult(rps, _ms(*p50.groups()), _ms(*p99.groups()),  # type: ignore[union-attr]
                     int(errors.group(1)) if errors else 0)


def download(url: str, headers: list[str]) -> float:
    """MB/s (10^6 bytes per second) of a 1 GiB download with curl."""
    args = ["curl", "-sS", "-o", "/dev/null", "-w", "%{size_download} %{speed_download}"]
    for h in headers:
        args += ["-H", h]
    out = subprocess.run(args + [url], check=True, capture_output=True, text=True).stdout
    size, speed = out.split()
    if int(size) != GIB:
        raise SystemExit(f"download through {url} returned {size} bytes, not {GIB}")
    return float(speed) / 1e6


def best_download(url: str, headers: list[str], runs: int) -> float:
    return max(download(url, headers) for _ in range(runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--downloads", type=int, default=3, help="1 GiB downloads per proxy "
                        "(the best is kept)")
    args = parser.parse_args()
    for tool in ("wrk", "nginx", "curl"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (see scripts/apt-packages.txt)")
    small, big = "/small", f"/download?n={GIB}"
    results: dict[str, WrkResult] = {}
    streams: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp, grain(Path(tmp)) as (sock, grain_port):
        _wait_http(grain_port)
        cases: list[tuple[str, contextlib.AbstractContextManager[int], list[str]]] = [
            ("nginx (1 worker)", nginx(Path(tmp), sock, "1"), []),
            ("nginx (auto workers)", nginx(Path(tmp), sock, "auto"), []),
        ]
        direct = f"http://127.0.0.1:{grain_port}"
        wrk(direct + small, [], 2)
        results["direct"] = wrk(direct + small, [], args.duration)
        for name, server, headers in cases:
            with server as port:
                url = f"http://127.0.0.1:{port}"
                wrk(url + small, headers, 2)
                results[name] = wrk(url + small, headers, args.duration)
                streams[name] = best_download(url + big, headers, args.downloads)
        with gateway(sock) as port:
            headers = [f"Host: {SESSION_LABEL}.localhost:{port}",
                       "Cookie: sandhaven_test=granted"]
            url = f"http://127.0.0.1:{port}"
            wrk(url + small, headers, 2)
            results["gateway"] = wrk(url + small, headers, args.duration)
            streams["gateway"] = best_download(url + big, headers, args.downloads)

    ref, gw = results["nginx (1 worker)"], results["gateway"]
    print("| path | req/s | p50 ms | p99 ms |")
    print("| --- | ---: | ---: | ---: |")
    for name, result in results.items():
        print(result.row(name))
        if result.errors:
            print(f"  {name}: {result.errors} non-2xx responses", file=sys.stderr)
    print()
    print("| path | 1 GiB download MB/s |")
    print("| --- | ---: |")
    for name, speed in streams.items():
        print(f"| {name} | {speed:,.0f} |")
    print()
    ratio_rps = gw.rps / ref.rps
    ratio_p99 = gw.p99_ms / ref.p99_ms
    ratio_stream = streams["gateway"] / streams["nginx (1 worker)"]
    auto = results["nginx (auto workers)"]
    print("Ratios, gateway / nginx (1 worker) [goal]:")
    print(f"  req/s   {ratio_rps:.2f}  [>= 0.5]  {'met' if ratio_rps >= 0.5 else 'NOT met'}")
    print(f"  p99     {ratio_p99:.2f}  [<= 2]    {'met' if ratio_p99 <= 2 else 'NOT met'}")
    print(f"  stream  {ratio_stream:.2f}  [>= 0.7]  {'met' if ratio_stream >= 0.7 else 'NOT met'}")
    print("Ratios, gateway / nginx (auto workers), for reference:")
    print(f"  req/s   {gw.rps / auto.rps:.2f}   p99 {gw.p99_ms / auto.p99_ms:.2f}   "
          f"stream {streams['gateway'] / streams['nginx (auto workers)']:.2f}")


if __name__ == "__main__":
    main()
