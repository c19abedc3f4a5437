"""The grain log keeps the newest output within its cap."""

from pathlib import Path

from sandhaven.supervisor.log import GrainLog


def test_log_stays_within_its_cap_and_keeps_the_newest_lines(tmp_path: Path) -> None:
    log = GrainLog(tmp_path / "g1", cap_bytes=8192)
    for i in range(2000):
        log.write(f"line {i}\n".encode())
    log.note("crashed")
    size = sum(p.stat().st_size for p in (tmp_path / "g1").iterdir())
    assert size <= 8192
    text = log.read()
    assert text.endswith("line 1999\n[sandhaven] crashed\n")
    assert "line 0\n" not in text
    assert log.tail() == "[sandhaven] crashed"
