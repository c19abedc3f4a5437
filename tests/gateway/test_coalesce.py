"""Write coalescing for uvicorn's HTTP protocol (unit: a recording transport)."""

from __future__ import annotations

import asyncio
from typing import Any

from sandhaven.gateway.coalesce import LARGE, CoalescingTransport


class RecordingTransport:
    """The part of an asyncio transport the wrapper uses; records each syscall-level write."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def writelines(self, data: Any) -> None:
        self.writes.append(b"".join(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        self.paused = True


def test_one_step_one_write_and_order_kept() -> None:
    async def main() -> None:
        real = RecordingTransport()
        t = CoalescingTransport(real, asyncio.get_running_loop())  # type: ignore[arg-type]
        t.write(b"HTTP/1.1 200 OK\r\n\r\n")
        t.write(b"hello")
        assert real.writes == []
        assert t.get_write_buffer_size() == 24
        await asyncio.sleep(0)
        assert real.writes == [b"HTTP/1.1 200 OK\r\n\r\nhello"]
        big = b"x" * LARGE
        t.write(b"head")
        t.write(big)
        assert real.writes[1:] == [b"head" + big]
        t.write(b"tail")
        t.close()
        assert real.writes[2:] == [b"tail"] and real.closed
        t.pause_reading()  # anything else is the real transport's
        assert real.paused

    asyncio.run(main())
