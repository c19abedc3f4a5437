"""Fixtures that run real grains (real bubblewrap, cgroups and processes)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sandhaven.sandbox.testing import make_runtime_root, remove_tree


@pytest.fixture
def runtime_root() -> Iterator[Path]:
    root = make_runtime_root()
    try:
        yield root
    finally:
        remove_tree(root)
