"""Compare HTTP client libraries for the gateway's upstream side (grain on a Unix socket).

Starts a trivial uvicorn app on a Unix socket in a child process, then times
sequential and 64-way concurrent small GETs and a 256 MiB streamed download with
aiohttp (UnixConnector), httpx (AsyncHTTPTransport(uds=...)) and h11 over asyncio
streams. Prints requests/s and MB/s per client. Run:
``.venv/bin/python bench/upstream_clients.py``.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import h11
import httpx

APP = r"""
import sys, uvicorn
CHUNK = b"x" * 65536
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["path"] == "/big":
        n = 256 * 1024 * 1024
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(n).encode())]})
        for _ in range(n // len(CHUNK)):
            await send({"type": "http.response.body", "body": CHUNK, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"hello"})
uvicorn.run(app, uds=sys.argv[1], log_level="warning", loop="uvloop", http="httptools")
"""

N_SEQ = 3000
N_CONC = 20000
CONC = 64


async def bench_aiohttp(sock: str) -> tuple[float, float, float]:
    conn = aiohttp.UnixConnector(path=sock, limit=0)
    async with aiohttp.ClientSession(connector=conn, auto_decompress=False) as s:

        async def one() -> None:
            async with s.get("http://grain/") as r:
                await r.read()

        t = time.perf_counter()
        for _ in range(N_SEQ):
            await one()
        seq = N_SEQ / (time.perf_counter() - t)
        t = time.perf_counter()
        await run_conc(one)
        conc = N_CONC / (time.perf_counter() - t)
        t = time.perf_counter()
        n = 0
        async with s.get("http://grain/big") as r:
            async for chunk in r.content.iter_any():
                n += len(chunk)
        mbs = n / (time.perf_counter() - t) / 1e6
    return seq, conc, mbs


async def bench_httpx(sock: str) -> tuple[float, float, float]:
    transport = httpx.AsyncHTTPTransport(uds=sock, limits=httpx.Limits(max_connections=None))
    async with httpx.AsyncClient(transport=transport) as c:

        async def one() -> None:
            r = await c.get("http://grain/")
            r.read()

        t = time.perf_counter()
        for _ in range(N_SEQ):
            await one()
        seq = N_SEQ / (time.perf_counter() - t)
        t = time.perf_counter()
        await run_conc(one)
        conc = N_CONC / (time.perf_counter() - t)
        t = time.perf_counter()
        n = 0
        async with c.stream("GET", "http://grain/big") as r:
            async for chunk in r.aiter_raw():
                n += len(chunk)
        mbs = n / (time.perf_counter() - t) / 1e6
    return seq, conc, mbs


class H11Pool:
    def __init__(self, sock: str) -> None:
        self.sock = sock
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, h11.Connection]] = []

    async def get(self, path: str, sink: list[int] | None = None) -> None:
        if self.idle:
            r, w, conn = self.idle.pop()
        else:
            r, w = await asyncio.open_unix_connection(self.sock)
            conn = h11.Connection(h11.CLIENT)
        w.write(conn.send(h11.Request(method="GET", target=path, headers=[("host", "grain")])))
        w.write(conn.send(h11.EndOfMessage()))
        while True:
            ev = conn.next_event()
            if ev is h11.NEED_DATA:
                conn.receive_data(await r.read(262144))
                continue
            if isinstance(ev, h11.Data) and sink is not None:
                sink[0] += len(ev.data)
            if isinstance(ev, h11.EndOfMessage):
                break
        conn.start_next_cycle()
        self.idle.append((r, w, conn))


async def bench_h11(sock: str) -> tuple[float, float, float]:
    pool = H11Pool(sock)

    async def one() -> None:
        await pool.get("/")

    t = time.perf_counter()
    for _ in range(N_SEQ):
        await one()
    seq = N_SEQ / (time.perf_counter() - t)
    t = time.perf_counter()
    await run_conc(one)
    conc = N_CONC / (time.perf_counter() - t)
    sink = [0]
    t = time.perf_counter()
    await pool.get("/big", sink)
    mbs = sink[0] / (time.perf_counter() - t) / 1e6
    for _, w, _ in pool.idle:
        w.close()
    return seq, conc, mbs


async def run_conc(one) -> None:  # type: ignore[no-untyped-def]
    remaining = N_CONC

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await one()

    await asyncio.gather(*(worker() for _ in range(CONC)))


def main() -> None:
    import uvloop

    with tempfile.TemporaryDirectory() as tmp:
        sock = str(Path(tmp) / "app.sock")
        proc = subprocess.Popen([sys.executable, "-c", APP, sock])
        try:
            deadline = time.monotonic() + 20
            while not os.path.exists(sock):
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("upstream app did not start")
                time.sleep(0.02)
            for name, fn in (
                ("aiohttp", bench_aiohttp),
                ("httpx", bench_httpx),
                ("h11", bench_h11),
            ):
                seq, conc, mbs = uvloop.run(fn(sock))
                print(
                    f"{name:8} sequential {seq:7.0f} req/s   64 concurrent {conc:7.0f} req/s"
                    f"   256 MiB download {mbs:7.0f} MB/s"
                )
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
