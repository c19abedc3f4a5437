"""Run a supervisor with one grain until killed (used to test a SIGKILLed server).

    python serve_one_grain.py ROOT GRAIN_ID APP_DIR CGROUP_PARENT

Prints one JSON line {"socket": path, "pids": [...]} once the grain answers.
"""

import asyncio
import json
import sys
from pathlib import Path

from sandhaven.sandbox.testing import python_app_spec, test_config
from sandhaven.supervisor import Supervisor


async def main(root: Path, grain_id: str, app: Path, parent: str) -> None:
    config = test_config(root, cgroup_parent=parent)
    sup = Supervisor(lambda gid: python_app_spec(root, gid, app), config)
    await sup.start()
    sock = await sup.ensure_running(grain_id)
    pids = sup._cgroups.grain(grain_id).pids()  # noqa: SLF001
    print(json.dumps({"socket": str(sock), "pids": pids}), flush=True)
    await asyncio.Event().wait()


asyncio.run(main(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), sys.argv[4]))
