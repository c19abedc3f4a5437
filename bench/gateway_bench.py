"""Gateway benchmark: small-response throughput and latency, and a 1 GiB download.

Compared, with the same trivial grain (``sandhaven.testing.http_grain``, one
uvicorn process, uvloop + httptools) behind the same Unix socket:

(a) **direct** — wrk to a TCP listener *of the same grain process*. wrk cannot
    speak to a Unix socket, and a socat front would measure socat's relay (a
    fork per connection and a copy per byte, field-notes.md) rather than the
    app; a second listener in the same process measures the app's own ceiling
    with no proxy at all.
(b) **nginx** as reverse proxy to the Unix socket, HTTP/1.1 with a keep-alive
    upstream pool, unbuffered like the gateway (so server-sent events work) but
    with a 256 KiB proxy buffer, the gateway's read size (nginx's default 4 KiB
    buffer held it to ~650 MB/s on the 1 GiB download, which would flatter the
    gateway), ``worker_processes 1`` because the gateway is one process
    (DESIGN.md: one process holds gateway, shell and supervisor); nginx with
    ``worker_processes auto`` is measured too and reported for reference.
(c) the **Sandhaven gateway** under uvicorn (uvloop + httptools), the full
    stack (forwarded-header check, host routing, origin check, resolver, header
    rules) with a valid session grant, one process; and, as a reference for the
    scale-out DESIGN.md plans, two gateway processes on one listening socket.

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

from sandhaven.testing.gateway_server import command

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
        [
            sys.executable,
            "-m",
            "sandhaven.testing.http_grain",
            "--fd",
            str(unix.fileno()),
            "--fd",
            str(tcp.fileno()),
        ],
        pass_fds=[unix.fileno(), tcp.fileno()],
    )
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
            proxy_buffer_size 256k;
            proxy_buffers 4 256k;
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
    conf.write_text(
        NGINX_CONF.format(workers=workers, dir=conf_dir, socket=socket_path, port=port, user=user)
    )
    proc = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(conf_dir)])
    try:
        _wait_http(port, proc)
        yield port
    finally:
        _stop(proc)


@contextlib.contextmanager
def gateway(socket_path: str, processes: int = 1) -> Iterator[int]:
    """The gateway stack; with ``processes`` > 1, that many gateway processes
    accepting on one shared listening socket (the kernel spreads connections)."""
    listener = _listen_tcp()
    port = listener.getsockname()[1]
    procs = [
        subprocess.Popen(command(listener.fileno(), socket_path, port),
                         pass_fds=[listener.fileno()])
        for _ in range(processes)
    ]
    listener.close()
    try:
        yield port
    finally:
        for proc in procs:
            _stop(proc)


def _wait_http(port: int, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Readiness: a TCP connect succeeds (bounded: 10 s)."""
    deadline = time.monotonic() + 10
    while True:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"server exited with status {proc.returncode} before listening")
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
    return WrkResult(
        rps,
        _ms(*p50.groups()),
        _ms(*p99.groups()),  # type: ignore[union-attr]
        int(errors.group(1)) if errors else 0,
    )


def download(url: str, headers: list[str], unix_socket: str | None = None) -> float:
    """MB/s (10^6 bytes per second) of a 1 GiB download with curl."""
    args = ["curl", "-sS", "-o", "/dev/null", "-w", "%{size_download} %{speed_download}"]
    if unix_socket:
        args += ["--unix-socket", unix_socket]
    for h in headers:
        args += ["-H", h]
    out = subprocess.run(args + [url], check=True, capture_output=True, text=True).stdout
    size, speed = out.split()
    if int(size) != GIB:
        raise SystemExit(f"download through {url} returned {size} bytes, not {GIB}")
    return float(speed) / 1e6


def best_download(url: str, headers: list[str], runs: int, unix_socket: str | None = None) -> float:
    return max(download(url, headers, unix_socket) for _ in range(runs))


def median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="interleaved rounds over all paths (medians are reported)",
    )
    parser.add_argument(
        "--downloads",
        type=int,
        default=3,
        help="1 GiB downloads per path, interleaved (the best is kept)",
    )
    args = parser.parse_args()
    for tool in ("wrk", "nginx", "curl"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (see scripts/apt-packages.txt)")
    small, big = "/small", f"/download?n={GIB}"
    runs: dict[str, list[WrkResult]] = {}
    streams: dict[str, list[float]] = {}
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        sock, grain_port = stack.enter_context(grain(tmp))
        _wait_http(grain_port)
        nginx_one = stack.enter_context(nginx(tmp, sock, "1"))
        nginx_auto = stack.enter_context(nginx(tmp, sock, "auto"))
        gateway_port = stack.enter_context(gateway(sock))
        gateway2_port = stack.enter_context(gateway(sock, processes=2))

        def session(port: int) -> list[str]:
            return [f"Host: {SESSION_LABEL}.localhost:{port}", "Cookie: sandhaven_test=granted"]

        paths: dict[str, tuple[str, list[str]]] = {
            "direct": (f"http://127.0.0.1:{grain_port}", []),
            "nginx (1 worker)": (f"http://127.0.0.1:{nginx_one}", []),
            "nginx (auto workers)": (f"http://127.0.0.1:{nginx_auto}", []),
            "gateway": (f"http://127.0.0.1:{gateway_port}", session(gateway_port)),
            "gateway (2 processes)": (f"http://127.0.0.1:{gateway2_port}", session(gateway2_port)),
        }
        # Every path in turn, round after round: the machine is shared, and
        # interleaving spreads any background load over all of them alike.
        for url, headers in paths.values():
            wrk(url + small, headers, 2)  # warm-up: connections, pools, caches
        for _ in range(args.rounds):
            for name, (url, headers) in paths.items():
                runs.setdefault(name, []).append(wrk(url + small, headers, args.duration))
        for _ in range(args.downloads):
            streams.setdefault("direct (curl on the Unix socket)", []).append(
                download("http://grain" + big, [], unix_socket=sock)
            )
            for name, (url, headers) in paths.items():
                if name != "direct":
                    streams.setdefault(name, []).append(download(url + big, headers))

    results = {
        name: WrkResult(
            median([r.rps for r in rs]),
            median([r.p50_ms for r in rs]),
            median([r.p99_ms for r in rs]),
            sum(r.errors for r in rs),
        )
        for name, rs in runs.items()
    }
    best = {name: max(speeds) for name, speeds in streams.items()}
    print(
        f"wrk: 64 connections, {args.rounds} rounds of {args.duration} s, medians; "
        f"per-round req/s in brackets"
    )
    print("| path | req/s | p50 ms | p99 ms |")
    print("| --- | ---: | ---: | ---: |")
    for name, result in results.items():
        rounds = ", ".join(f"{r.rps / 1000:.1f}k" for r in runs[name])
        print(f"{result.row(name)[:-1]}  ({rounds}) |")
        if result.errors:
            print(f"  {name}: {result.errors} non-2xx responses", file=sys.stderr)
    print()
    print(f"1 GiB download, best of {args.downloads}")
    print("| path | MB/s |")
    print("| --- | ---: |")
    for name, speed in best.items():
        print(f"| {name} | {speed:,.0f} |")
    print()
    ref, gw, auto = results["nginx (1 worker)"], results["gateway"], results["nginx (auto workers)"]
    ratio_rps = gw.rps / ref.rps
    ratio_p99 = gw.p99_ms / ref.p99_ms
    ratio_stream = best["gateway"] / best["nginx (1 worker)"]
    per_round = [
        g.rps / n.rps for g, n in zip(runs["gateway"], runs["nginx (1 worker)"], strict=True)
    ]
    print(
        "Per-round req/s ratio gateway / nginx (1 worker), same round: "
        + ", ".join(f"{r:.2f}" for r in per_round)
    )
    print("Ratios, gateway / nginx (1 worker) [goal]:")
    print(f"  req/s   {ratio_rps:.2f}  [>= 0.5]  {'met' if ratio_rps >= 0.5 else 'NOT met'}")
    print(f"  p99     {ratio_p99:.2f}  [<= 2]    {'met' if ratio_p99 <= 2 else 'NOT met'}")
    print(f"  stream  {ratio_stream:.2f}  [>= 0.7]  {'met' if ratio_stream >= 0.7 else 'NOT met'}")
    print("Ratios, gateway / nginx (auto workers), for reference:")
    print(
        f"  req/s   {gw.rps / auto.rps:.2f}   p99 {gw.p99_ms / auto.p99_ms:.2f}   "
        f"stream {best['gateway'] / best['nginx (auto workers)']:.2f}"
    )


if __name__ == "__main__":
    main()
