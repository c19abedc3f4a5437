"""Encryption at rest: what a gocryptfs grain volume costs against a plain directory.

    sudo .venv/bin/python bench/encryption_bench.py [--mib 512] [--rows 20000] [--runs 20]

In the same run, on the same disk, against a plain directory as the reference:

- sequential write (``dd bs=1M conv=fdatasync``) and read (``dd`` to /dev/null,
  page cache dropped before the read when the kernel allows) in MB/s;
- an SQLite insert workload (transactions of 100 rows of ~200 bytes) in rows/s,
  twice: WAL with synchronous=NORMAL, and SQLite's defaults (rollback journal,
  synchronous=FULL), which most apps in ``apps/`` run with;
- what explains the write figures: the time of one small ``pwrite`` (24 bytes
  and 4 KiB, the sizes of SQLite's WAL frame header and page) into a file
  that exists, in microseconds;
- grain cold start (tests/sandbox/apps/hello): a plain grain vs. a grain whose
  /var is an encrypted volume mounted at start and unmounted at stop, runs
  interleaved; the median difference is what encryption adds.

Prints one JSON object with the ratios encrypted/plain. Goal (the encryption
issue): throughput ratios >= 0.5; cold start grows by <= 30 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sqlite3
import statistics
import subprocess
import time
from pathlib import Path

from sandhaven.encryption.kek import Kek
from sandhaven.encryption.volumes import GrainVolumes
from sandhaven.sandbox.testing import (
    http_request,
    make_runtime_root,
    python_app_spec,
    remove_tree,
    test_config,
)
from sandhaven.supervisor import Supervisor

HELLO = Path(__file__).resolve().parent.parent / "tests" / "sandbox" / "apps" / "hello"


def drop_caches() -> bool:
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def dd_throughput(directory: Path, mib: int) -> dict[str, float]:
    """MB/s (10^6 bytes per second) of a sequential write then read of ``mib`` MiB."""
    target = directory / "bench.bin"
    t0 = time.perf_counter()
    subprocess.run(["dd", "if=/dev/zero", f"of={target}", "bs=1M", f"count={mib}",
                    "conv=fdatasync", "status=none"], check=True)
    write = time.perf_counter() - t0
    dropped = drop_caches()
    t0 = time.perf_counter()
    subprocess.run(["dd", f"if={target}", "of=/dev/null", "bs=1M", "status=none"], check=True)
    read = time.perf_counter() - t0
    target.unlink()
    size = mib * 1024 * 1024 / 1e6
    return {"write_mb_s": round(size / write, 1), "read_mb_s": round(size / read, 1),
            "caches_dropped": dropped}


def write_latency_us(directory: Path, count: int = 3000) -> dict[str, float]:
    """Mean time of one ``pwrite`` (µs) of 24 bytes and of 4 KiB at a
    4 KiB offset of an existing 64 KiB file: the cost every small write of an app
    pays (plain: a copy into the page cache; encrypted: a round trip to the
    gocryptfs daemon, which reads, decrypts, merges, encrypts and writes the
    4 KiB blocks involved)."""
    path = directory / "latency.bin"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.pwrite(fd, b"\0" * 65536, 0)
        out = {}
        for size in (24, 4096):
            data = b"y" * size
            t0 = time.perf_counter()
            for _ in range(count):
                os.pwrite(fd, data, 4096)
            out[f"pwrite_{size}_us"] = round((time.perf_counter() - t0) / count * 1e6, 1)
        return out
    finally:
        os.close(fd)
        path.unlink()


def sqlite_inserts(directory: Path, rows: int, journal: str = "WAL",
                   synchronous: str = "NORMAL") -> float:
    """Rows per second inserted in transactions of 100 with ``journal_mode`` and
    ``synchronous`` as given."""
    path = directory / "bench.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute(f"PRAGMA journal_mode={journal}")
    db.execute(f"PRAGMA synchronous={synchronous}")
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
    body = "x" * 200
    t0 = time.perf_counter()
    for start in range(0, rows, 100):
        db.execute("BEGIN")
        db.executemany("INSERT INTO t (body) VALUES (?)", [(body,)] * min(100, rows - start))
        db.execute("COMMIT")
    elapsed = time.perf_counter() - t0
    db.close()
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return rows / elapsed


async def cold_starts(root: Path, volumes: GrainVolumes, runs: int) -> dict[str, float]:
    plain_spec = python_app_spec(root, "plain", HELLO)
    mounts: list[float] = []

    async def spec_for(gid: str):  # type: ignore[no-untyped-def]
        if gid == "plain":
            return plain_spec
        t0 = time.perf_counter()
        point = await asyncio.to_thread(volumes.mount, gid)
        mounts.append(time.perf_counter() - t0)
        return dataclasses.replace(plain_spec, storage_dir=point)

    async def release(gid: str) -> None:
        if gid != "plain":
            await asyncio.to_thread(volumes.unmount, gid)

    volumes.create("enc")
    times: dict[str, list[float]] = {"plain": [], "enc": []}
    async with Supervisor(spec_for, test_config(root), release=release) as sup:
        for gid in ("plain", "enc"):  # warm the page cache and the helpers
            await sup.ensure_running(gid)
            await sup.stop(gid)
        for _ in range(runs):
            for gid in ("plain", "enc"):
                t0 = time.perf_counter()
                sock = await sup.ensure_running(gid)
                status, _ = await http_request(sock, "/")
                times[gid].append(time.perf_counter() - t0)
                assert status == 200
                await sup.stop(gid)
    plain, enc = statistics.median(times["plain"]), statistics.median(times["enc"])
    deltas = sorted(e - p for p, e in zip(times["plain"], times["enc"], strict=True))
    return {"plain_median_ms": round(plain * 1000, 1), "encrypted_median_ms": round(enc * 1000, 1),
            "delta_median_ms": round((enc - plain) * 1000, 1),
            "delta_p90_ms": round(deltas[int(len(deltas) * 0.9) - 1] * 1000, 1),
            "mount_median_ms": round(statistics.median(mounts) * 1000, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=512)
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    root = make_runtime_root("sandhaven-bench-")
    try:
        volumes = GrainVolumes(Kek.generate(), root / "grains",
                               test_config(root).runtime_dir / "volumes", "gocryptfs",
                               allow_other=True)
        volumes.create("io")
        encrypted = volumes.mount("io")
        plain = root / "plain"
        plain.mkdir()
        result: dict[str, object] = {"load_avg": os.getloadavg()[0]}
        for name, directory in (("plain", plain), ("encrypted", encrypted)):
            result[name] = dd_throughput(directory, args.mib)
        for name, directory in (("plain", plain), ("encrypted", encrypted)):
            result[f"{name}_sqlite_rows_s"] = round(sqlite_inserts(directory, args.rows))
        for name, directory in (("plain", plain), ("encrypted", encrypted)):
            result[f"{name}_sqlite_default_rows_s"] = round(
                sqlite_inserts(directory, args.rows, "DELETE", "FULL"))
        for name, directory in (("plain", plain), ("encrypted", encrypted)):
            result[f"{name}_write_latency"] = write_latency_us(directory)
        volumes.unmount("io")
        p, e = result["plain"], result["encrypted"]
        result["ratio_write"] = round(e["write_mb_s"] / p["write_mb_s"], 2)  # type: ignore[index]
        result["ratio_read"] = round(e["read_mb_s"] / p["read_mb_s"], 2)  # type: ignore[index]
        result["ratio_sqlite"] = round(result["encrypted_sqlite_rows_s"]  # type: ignore[operator]
                                       / result["plain_sqlite_rows_s"], 2)
        result["ratio_sqlite_default"] = round(
            result["encrypted_sqlite_default_rows_s"]  # type: ignore[operator]
            / result["plain_sqlite_default_rows_s"], 2)
        result["cold_start"] = asyncio.run(cold_starts(root, volumes, args.runs))
        volumes.unmount_all()
        print(json.dumps(result, indent=1))
    finally:
        remove_tree(root)


if __name__ == "__main__":
    main()
