"""End to end: the Hello package, installed, runs in a real grain sandbox from its
read-only tree with the command, port and environment its manifest declares."""

from __future__ import annotations

import asyncio
import json

import pytest

from sandhaven.packages.install import install_package
from sandhaven.packages.keys import SigningKey
from sandhaven.packages.manifest import Manifest
from sandhaven.packages.testing import build_hello
from sandhaven.packages.tree import remove_tree
from sandhaven.sandbox.spec import GrainSpec, Limits, MiB
from sandhaven.sandbox.testing import http_request, make_runtime_root, test_config
from sandhaven.store import Store
from sandhaven.store.models import Package


@pytest.fixture
def root():
    path = make_runtime_root()  # reachable by the grain user, unlike pytest's tmp_path
    try:
        yield path
    finally:
        remove_tree(path)


def test_installed_hello_runs_in_a_grain(root):
    from sandhaven.supervisor import Supervisor

    store = Store.open(f"sqlite:///{root / 'store.sqlite3'}")
    try:
        result = install_package(store, root / "packages",
                                 build_hello(root, SigningKey.generate()))
        with store.session() as s:
            manifest = Manifest.model_validate(s.get(Package, result.package_id).manifest)
    finally:
        store.close()
    action = manifest.actions[0]

    def spec_for(grain_id: str) -> GrainSpec:
        storage = root / "storage" / grain_id
        storage.mkdir(parents=True, exist_ok=True)
        return GrainSpec(package_dir=root / "packages" / result.package_id, storage_dir=storage,
                         command=tuple(action.command.argv), app_port=manifest.app.port,
                         env=action.command.env, limits=Limits(memory_bytes=256 * MiB))

    async def main() -> None:
        async with Supervisor(spec_for, test_config(root)) as sup:
            sock = await sup.ensure_running("g1")
            status, body = await http_request(sock, "/")
            assert status == 200
            assert json.loads(body) == {"headers": {}, "note": ""}

    asyncio.run(main())
