"""Request latency through the grain bridge versus straight to the app.

    sudo .venv/bin/python bench/bridge.py [--requests 2000]

Sequential GETs of the trivial app (tests/sandbox/apps/hello), one client:
keep-alive on one connection, and a new connection per request. "bare" is the
same app on the host over TCP; "grain" is the app in a grain over its app.sock
(Unix socket → sandhaven-init relay → the app's loopback port). Prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from sandhaven.sandbox.bridge import connect_app
from sandhaven.sandbox.testing import (
    DEBIAN_PYTHON,
    make_runtime_root,
    python_app_spec,
    remove_tree,
    test_config,
)
from sandhaven.supervisor import Supervisor

HELLO = Path(__file__).resolve().parent.parent / "tests" / "sandbox" / "apps" / "hello"
REQUEST = b"GET / HTTP/1.1\r\nHost: sandbox\r\n\r\n"


def read_response(sock: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += sock.recv(65536)


def measure(connect: Callable[[], socket.socket], n: int) -> dict[str, float]:
    keep, fresh = [], []
    s = connect()
    for _ in range(n):
        t = time.perf_counter()
        s.sendall(REQUEST)
        read_response(s)
        keep.append(time.perf_counter() - t)
    s.close()
    for _ in range(n // 4):
        t = time.perf_counter()
        s = connect()
        s.sendall(REQUEST)
        read_response(s)
        s.close()
        fresh.append(time.perf_counter() - t)
    return {
        "keepalive_p50_us": round(statistics.median(keep) * 1e6),
        "keepalive_req_s": round(len(keep) / sum(keep)),
        "new_conn_p50_us": round(statistics.median(fresh) * 1e6),
        "new_conn_req_s": round(len(fresh) / sum(fresh)),
    }


async def main(n: int) -> dict[str, object]:
    root = make_runtime_root("sandhaven-bench-")
    port = 18931
    bare = await asyncio.create_subprocess_exec(
        DEBIAN_PYTHON, "-B", str(HELLO / "app.py"), str(port)
    )
    try:
        async with Supervisor(
            lambda gid: python_app_spec(root, gid, HELLO), test_config(root)
        ) as sup:
            path = await sup.ensure_running("g1")
            grain = await asyncio.to_thread(measure, lambda: connect_app(path), n)
        while True:
            try:
                socket.create_connection(("127.0.0.1", port)).close()
                break
            except OSError:
                await asyncio.sleep(0.01)
        direct = await asyncio.to_thread(
            measure, lambda: socket.create_connection(("127.0.0.1", port)), n
        )
    finally:
        bare.kill()
        await bare.wait()
        remove_tree(root)
    return {
        "requests": n,
        "bare_tcp": direct,
        "grain_bridge": grain,
        "load_average": os.getloadavg()[0],
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("Run as root: grains need cgroups and the unprivileged grain uid.")
    print(json.dumps(asyncio.run(main(args.requests)), indent=2))
