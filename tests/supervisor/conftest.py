"""Fixtures for supervisor tests: real grains under a fresh runtime root."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sandhaven.sandbox.testing import make_runtime_root, remove_tree

HELLO = Path(__file__).parent.parent / "sandbox" / "apps" / "hello"
SQLITE = Path(__file__).parent / "apps" / "sqlite"


@pytest.fixture
def root() -> Iterator[Path]:
    path = make_runtime_root()
    try:
        yield path
    finally:
        remove_tree(path)
