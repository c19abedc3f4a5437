"""Figures for every app of a built catalog: package size, cold start to first byte
through the gateway, idle memory; the platform's Hello example as the reference.

    sudo .venv/bin/python bench/apps_bench.py [CATALOG_DIR] [--runs 5]

CATALOG_DIR defaults to the default catalog (``DATA_DIR/catalog``, what
``scripts/serve.sh`` builds). A real ``sandhaven serve`` on a free port reads the
catalog; every app is installed from it through ``POST /api/v1/catalog/{id}/install``
(the verified path), Hello from a fresh ``.spk``. For each app: one grain from its
first action, opened once (first start, then idle), then ``--runs`` times: stop the
grain (``POST /api/v1/grains/{id}/stop``), open a fresh session
(``POST /api/v1/grains/{id}/sessions``) and time from the session's first request
(the init URL, whose redirect leads to the app) until the first byte of the app's
answer, over TCP through the gateway. Median and max are printed.

Memory: after the timed runs the grain is opened once more and left idle for
``--idle`` seconds; then the proportional set size (PSS, ``/proc/<pid>/smaps_rollup``)
of every process in the grain's cgroup is summed: the app and the sandbox's own
processes. Prints one JSON object and a table with ratios to Hello.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from sandhaven.config import load_settings
from sandhaven.packages.keys import SigningKey
from sandhaven.packages.testing import build_hello
from sandhaven.sandbox.testing import make_runtime_root, remove_tree
from sandhaven.testing import start_server, stop_server

SANDHAVEN = [sys.executable, "-m", "sandhaven"]


def first_byte(url: str, port: int) -> tuple[float, int]:
    """Seconds from the first request of a fresh session (its init URL) to the first
    byte of the app's answer, following the gateway's redirect by hand over a raw
    socket to 127.0.0.1 (session hosts are *.localhost names). Returns (seconds,
    status of the app's answer)."""
    parts = urlsplit(url)
    t0 = time.perf_counter()
    status, headers = _get(port, parts.netloc, parts.path + ("?" + parts.query if parts.query
                                                             else ""), "")
    assert status in (302, 303, 307), f"init answered {status}"
    cookie = headers["set-cookie"].split(";", 1)[0]
    location = urlsplit(headers["location"])
    path = location.path + ("?" + location.query if location.query else "")
    status, _ = _get(port, location.netloc or parts.netloc, path or "/", cookie)
    return time.perf_counter() - t0, status


def _get(port: int, host: str, path: str, cookie: str) -> tuple[int, dict[str, str]]:
    """One GET; returns at the first line and headers (the first byte has come)."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        req = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n"
        if cookie:
            req += f"Cookie: {cookie}\r\n"
        s.sendall((req + "\r\n").encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    status = int(head[0].split()[1])
    headers = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), value.strip())
    return status, headers


def grain_pss_kib(grain_id: str) -> tuple[int, int]:
    """(PSS of all processes of the grain's cgroup in KiB, how many processes)."""
    pids: set[int] = set()
    for procs in glob.glob(f"/sys/fs/cgroup/**/{grain_id}/cgroup.procs", recursive=True):
        pids |= {int(p) for p in Path(procs).read_text().split()}
    total = 0
    for pid in pids:
        try:
            for line in open(f"/proc/{pid}/smaps_rollup"):
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total, len(pids)


def measure(api: httpx.Client, port: int, app_id: str, title: str, runs: int,
            idle: float) -> dict[str, object]:
    grain = api.post("/api/v1/grains", json={"app_id": app_id, "action": 0,
                                             "title": f"bench {title}"})
    grain.raise_for_status()
    gid = grain.json()["id"]
    first, status = first_byte(api.post(f"/api/v1/grains/{gid}/sessions").json()["url"], port)
    times = []
    for _ in range(runs):
        api.post(f"/api/v1/grains/{gid}/stop").raise_for_status()
        url = api.post(f"/api/v1/grains/{gid}/sessions").json()["url"]
        seconds, status = first_byte(url, port)
        times.append(seconds)
    first_byte(api.post(f"/api/v1/grains/{gid}/sessions").json()["url"], port)
    time.sleep(idle)  # idle memory is what is measured: let start-up garbage settle
    pss, processes = grain_pss_kib(gid)
    api.post(f"/api/v1/grains/{gid}/stop")
    return {"title": title, "first_start_s": round(first, 3),
            "cold_start_median_s": round(statistics.median(times), 3),
            "cold_start_max_s": round(max(times), 3), "status": status,
            "idle_pss_mib": round(pss / 1024, 1), "processes": processes}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default = Path(load_settings(environ={}).data_dir) / "catalog"
    parser.add_argument("catalog", nargs="?", type=Path, default=default)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--idle", type=float, default=5.0, help="seconds idle before PSS")
    args = parser.parse_args()
    index = json.loads((args.catalog / "index.json").read_text())

    root = make_runtime_root("sandhaven-apps-bench-")
    data = root / "data"
    live = start_server(data, "--sandbox-runtime-dir", str(root / "run"),
                        env={"SANDHAVEN_CATALOG_SOURCE": str(args.catalog.resolve())})
    try:
        subprocess.run([*SANDHAVEN, "--data-dir", str(data), "user", "add",
                        "bench@example.org", "--name", "Bench", "--admin"], check=True,
                       capture_output=True)
        token = subprocess.run([*SANDHAVEN, "--data-dir", str(data), "token", "create",
                                "bench@example.org"], check=True, capture_output=True,
                               text=True).stdout.strip()
        api = httpx.Client(base_url=live.url, timeout=600,
                           headers={"Authorization": f"Bearer {token}"})
        hello = build_hello(root, SigningKey.generate())
        hello_id = api.post("/api/v1/packages", content=hello.read_bytes()).json()["app_id"]
        results = [{**measure(api, live.port, hello_id, "Hello (reference)", args.runs,
                              args.idle), "package_mib": round(hello.stat().st_size / 2**20, 3)}]
        for app in index["apps"]:
            t0 = time.perf_counter()
            api.post(f"/api/v1/catalog/{app['app_id']}/install").raise_for_status()
            install = time.perf_counter() - t0
            results.append({**measure(api, live.port, app["app_id"], app["title"], args.runs,
                                      args.idle),
                            "package_mib": round(app["size"] / 2**20, 2),
                            "install_s": round(install, 2)})
    finally:
        stop_server(live)
        remove_tree(root)

    ref = results[0]
    print(json.dumps({"runs": args.runs, "cpus": os.cpu_count(), "apps": results}, indent=2))
    print(f"\n{'app':<22}{'package MiB':>12}{'cold start s (median/max)':>28}"
          f"{'× Hello':>9}{'idle PSS MiB':>14}{'× Hello':>9}")
    for r in results:
        print(f"{r['title']:<22}{r['package_mib']:>12}"
              f"{str(r['cold_start_median_s']) + ' / ' + str(r['cold_start_max_s']):>28}"
              f"{r['cold_start_median_s'] / ref['cold_start_median_s']:>9.1f}"
              f"{r['idle_pss_mib']:>14}{r['idle_pss_mib'] / ref['idle_pss_mib']:>9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
