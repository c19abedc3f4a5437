"""``python -m sandhaven.sandbox.native DIR``: build the grain helpers into DIR."""

import sys
from pathlib import Path

from sandhaven.errors import SandhavenError
from sandhaven.sandbox.native import ensure_built

if len(sys.argv) != 2:
    sys.exit("usage: python -m sandhaven.sandbox.native DIR")
try:
    print(ensure_built(Path(sys.argv[1])).spawn.parent)
except SandhavenError as exc:
    sys.exit(str(exc))
