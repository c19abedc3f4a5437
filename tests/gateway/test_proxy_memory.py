"""Bounded memory: 4 GiB down and 4 GiB up through the gateway, byte-identical, with
the gateway process's peak resident memory growing by less than 64 MiB.

Peak RSS is the kernel's ``VmHWM`` of the gateway process, reset after warm-up
by writing ``5`` to ``/proc/<pid>/clear_refs``; the baseline is ``VmRSS`` then.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandhaven.testing.http_grain import pattern, pattern_sha256
from sandhaven.testing.servers import run_gateway, run_grain

GIB = 1 << 30
SIZE = 4 * GIB
LIMIT = 64 << 20


def kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"{field} missing from /proc/{pid}/status")


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_4_gib_down_and_up_in_bounded_memory(tmp_path: Path) -> None:
    with (
        run_grain(tmp_path) as grain,
        run_gateway(grain.socket_path) as gateway,
        gateway.client() as c,
    ):
        # Warm-up: imports, pools and buffers that any first transfer allocates.
        for _ in range(3):
            with c.stream("GET", f"/download?n={64 << 20}") as r:
                for _ in r.iter_raw():
                    pass
            c.post("/upload", content=b"".join(pattern(8 << 20)))
        pid = gateway.proc.pid
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        baseline = kib(pid, "VmRSS")

        received = hashlib.sha256()
        total = 0
        with c.stream("GET", f"/download?n={SIZE}") as r:
            assert r.headers["content-length"] == str(SIZE)
            for chunk in r.iter_raw(1 << 20):
                received.update(chunk)
                total += len(chunk)
        assert total == SIZE
        assert received.hexdigest() == pattern_sha256(SIZE)

        sent = hashlib.sha256()

        def body() -> Iterator[bytes]:
            for piece in pattern(SIZE):
                sent.update(piece)
                yield piece

        result = c.post("/upload", content=body(), headers={"Content-Length": str(SIZE)}).json()
        assert result == {"length": SIZE, "sha256": sent.hexdigest(), "content_length": str(SIZE)}

        growth = kib(pid, "VmHWM") - baseline
        print(f"gateway peak RSS growth over 4 GiB down + 4 GiB up: {growth / (1 << 20):.1f} MiB")
        assert growth < LIMIT


def minor_faults(pid: int) -> int:
    """Minor page faults of ``pid`` so far (``/proc/<pid>/stat`` field 10, proc(5))."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[7])


def test_a_streamed_download_reuses_memory_instead_of_mapping_it(tmp_path: Path) -> None:
    """Each 256 KiB piece of a body is a new bytes object; with glibc's defaults
    they came from fresh mappings (20-100 page faults per MiB streamed, a third of
    the download's time). tune_malloc keeps them in the heap: almost none."""
    size = 256 << 20
    with (
        run_grain(tmp_path) as grain,
        run_gateway(grain.socket_path) as gateway,
        gateway.client() as c,
    ):
        def download() -> None:
            with c.stream("GET", f"/download?n={size}") as r:
                assert sum(len(chunk) for chunk in r.iter_raw(1 << 20)) == size

        download()  # warm-up: the heap grows to its working size once
        before = minor_faults(gateway.proc.pid)
        download()
        per_mib = (minor_faults(gateway.proc.pid) - before) / (size >> 20)
        print(f"gateway minor page faults per MiB streamed: {per_mib:.2f}")
        assert per_mib < 2
