"""Fixtures for the gateway tests: one test grain and one gateway per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sandhaven.testing.servers import Gateway, Grain, run_gateway, run_grain


@pytest.fixture(scope="module")
def grain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Grain]:
    with run_grain(tmp_path_factory.mktemp("grain")) as g:
        yield g


@pytest.fixture(scope="module")
def gateway(grain: Grain) -> Iterator[Gateway]:
    with run_gateway(grain.socket_path) as gw:
        yield gw
