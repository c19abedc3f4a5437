"""Process tuning for a long-running gateway."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc

import structlog

log = structlog.get_logger("sandhaven.gateway")

# glibc mallopt(3) parameters.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 4 << 20
"""Bytes from which glibc's malloc maps a block of its own (mallopt ``M_MMAP_THRESHOLD``)."""
TRIM_THRESHOLD = 32 << 20
"""Free bytes at the heap's top before glibc gives them back (``M_TRIM_THRESHOLD``)."""


def tune_gc() -> None:
    """Fewer, later garbage collections: move everything loaded at start-up out of
    the collector's sight and collect the young generation less often. The
    proxy's per-request objects are freed by reference counting; full
    collections at CPython's default thresholds showed up as p99 spikes."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 50, 100)


def tune_malloc() -> bool:
    """Keep the body buffers of streamed responses in malloc's heap.

    A streamed body crosses the gateway in 256 KiB pieces, each a new ``bytes``
    object. glibc serves blocks that large with a fresh ``mmap`` and returns them
    with ``munmap`` (its threshold only rises once a mapped block is freed, and
    falls back on some patterns), so every piece paid for 64 page faults and
    the unmapping: a third of a 1 GiB download's time went to the kernel's
    page-fault and unmap paths (``perf``). With the threshold at 4 MiB the pieces
    reuse heap memory. The trim threshold bounds what stays resident after a
    burst (32 MiB; the proxy holds at most ~1 MiB per stream by its own flow
    control). Returns False where the C library is not glibc (nothing is changed).
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    ok = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    if not ok:
        log.warning("malloc_tuning_refused")
    return ok
