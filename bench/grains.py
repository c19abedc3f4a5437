"""Grain platform figures: cold-start overhead, memory per grain, 100 grains at once.

    sudo .venv/bin/python bench/grains.py [--runs 30] [--grains 100]

Cold start: a request to a stopped grain of a trivial app (tests/sandbox/apps/hello,
stdlib Python) until its answer, minus the same app started bare on the host
(same interpreter, same readiness polling) until its answer, interleaved in the
same run. Memory: proportional set size (PSS) of the sandbox's own processes
(bubblewrap and the grain init/bridge), not the app. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from sandhaven.sandbox.testing import (
    DEBIAN_PYTHON,
    http_request,
    make_runtime_root,
    python_app_spec,
    remove_tree,
    test_config,
)
from sandhaven.supervisor import Supervisor
from sandhaven.supervisor.process import _POLL_FAST_MAX

HELLO = Path(__file__).resolve().parent.parent / "tests" / "sandbox" / "apps" / "hello"


async def bare_start(port: int) -> float:
    """Seconds from spawning the app on the host to its first HTTP answer."""
    t0 = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        DEBIAN_PYTHON,
        "-B",
        str(HELLO / "app.py"),
        str(port),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    delay = 0.001
    try:
        while True:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
                data = await reader.read()
                writer.close()
                if data.startswith(b"HTTP/"):
                    return time.perf_counter() - t0
            except OSError:
                pass
            await asyncio.sleep(delay)
            delay = min(delay * 2, _POLL_FAST_MAX)  # the supervisor's schedule
    finally:
        proc.kill()
        await proc.wait()


async def grain_start(sup: Supervisor, grain_id: str) -> float:
    """Seconds from asking for a stopped grain to its first HTTP answer."""
    t0 = time.perf_counter()
    sock = await sup.ensure_running(grain_id)
    status, _ = await http_request(sock, "/")
    elapsed = time.perf_counter() - t0
    assert status == 200
    await sup.stop(grain_id)
    return elapsed


def pss_kib(pid: int) -> int:
    try:
        for line in open(f"/proc/{pid}/smaps_rollup"):
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def comm(pid: int) -> str:
    try:
        return open(f"/proc/{pid}/comm").read().strip()
    except OSError:
        return ""


def platform_pss_kib(sup: Supervisor, grain_id: str) -> tuple[int, int]:
    """(PSS of bubblewrap + init in KiB, PSS of the app's processes in KiB)."""
    platform = app = 0
    for pid in sup._cgroups.grain(grain_id).pids():  # noqa: SLF001
        if comm(pid) in ("bwrap", "sandhaven-init", "init"):
            platform += pss_kib(pid)
        else:
            app += pss_kib(pid)
    return platform, app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def main(runs: int, grains: int) -> dict[str, object]:
    root = make_runtime_root("sandhaven-bench-")
    try:
        spec_for = lambda gid: python_app_spec(root, gid, HELLO)  # noqa: E731
        async with Supervisor(spec_for, test_config(root)) as sup:
            await grain_start(sup, "warmup")
            await bare_start(free_port())
            bare, grain = [], []
            for i in range(runs):
                bare.append(await bare_start(free_port()))
                grain.append(await grain_start(sup, f"cold{i}"))
            overhead = [g - b for g, b in zip(grain, bare, strict=True)]

            # Many grains at once, then memory per grain while they all run.
            t0 = time.perf_counter()
            ids = [f"many{i}" for i in range(grains)]
            socks = await asyncio.gather(*(sup.ensure_running(g) for g in ids))
            answers = await asyncio.gather(*(http_request(s, "/") for s in socks))
            all_up = time.perf_counter() - t0
            errors = sum(1 for status, _ in answers if status != 200)
            per_grain = [platform_pss_kib(sup, g) for g in ids]
            stats = sup.statistics()
            t0 = time.perf_counter()
            await asyncio.gather(*(sup.stop(g) for g in ids))
            all_down = time.perf_counter() - t0
    finally:
        remove_tree(root)

    def ms(values: list[float]) -> dict[str, float]:
        values = sorted(values)
        return {
            "median": round(statistics.median(values) * 1000, 1),
            "p90": round(values[int(len(values) * 0.9) - 1] * 1000, 1),
            "min": round(values[0] * 1000, 1),
        }

    platform = [p for p, _ in per_grain]
    apps = [a for _, a in per_grain]
    return {
        "runs": runs,
        "cold_start_ms": {"bare": ms(bare), "grain": ms(grain), "overhead": ms(overhead)},
        "platform_pss_kib_per_grain": {"median": statistics.median(platform), "max": max(platform)},
        "app_pss_kib_per_grain": {"median": statistics.median(apps)},
        "many": {
            "grains": grains,
            "errors": errors,
            "all_answering_s": round(all_up, 2),
            "all_stopped_s": round(all_down, 2),
            "cgroup_memory_mib_total": round(stats["memory_bytes"] / 2**20, 1),
        },
        "host": {
            "cpus": os.cpu_count(),
            "kernel": os.uname().release,
            "load_average_1m": round(os.getloadavg()[0], 2),
            "bwrap": subprocess.run(
                ["bwrap", "--version"], capture_output=True, text=True
            ).stdout.strip(),
        },
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--grains", type=int, default=100)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("Run as root: grains need cgroups and the unprivileged grain uid.")
    print(json.dumps(asyncio.run(main(args.runs, args.grains)), indent=2))
