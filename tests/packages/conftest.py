from __future__ import annotations

from pathlib import Path

import pytest

from sandhaven.packages.keys import SigningKey
from sandhaven.packages.testing import build_hello
from sandhaven.store import Store


@pytest.fixture
def key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture
def other_key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture
def hello_spk(tmp_path: Path, key: SigningKey) -> Path:
    return build_hello(tmp_path, key)


@pytest.fixture
def store(tmp_path: Path):
    store = Store.open(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    yield store
    store.close()


@pytest.fixture
def packages_dir(tmp_path: Path) -> Path:
    return tmp_path / "data" / "packages"
