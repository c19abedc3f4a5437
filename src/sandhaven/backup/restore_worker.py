"""The restore worker: checks and unpacks a backup inside the worker sandbox
(``sandhaven.sandbox.worker``), the second wall around parsing an untrusted zip.

Protocol: ``python -m sandhaven.backup.restore_worker inspect FD`` prints one JSON
line: ``{"ok": true, "summary": {...}}`` (the metadata without its file list),
or ``{"ok": false, "error": "BadBackup", "message": "..."}``.
``... unpack FD /out/var`` checks again, unpacks into ``/out/var`` and prints
``{"ok": true, "bytes": n, "log": "<base64>"}``; a full disk reports
``"error": "StorageFull"``.
"""

from __future__ import annotations

import base64
import errno
import json
import os
import sys
from pathlib import Path
from typing import Any

from sandhaven.backup import format as fmt
from sandhaven.backup import reader
from sandhaven.errors import BadBackup


def summary(meta: fmt.Metadata) -> dict[str, Any]:
    """What the parent needs to decide on a restore: everything but the file list."""
    data = meta.model_dump(mode="json", exclude={"files"})
    data["data_bytes"] = meta.data_bytes
    data["entries"] = len(meta.files)
    return data


def worker(argv: list[str]) -> int:
    mode, fd = argv[0], int(argv[1])
    try:
        with os.fdopen(fd, "rb") as f:
            zf, meta = reader.inspect(f)
            if mode == "inspect":
                answer: dict[str, Any] = {"ok": True, "summary": summary(meta)}
            else:
                out = Path(argv[2])
                # Exists already when it is a fresh encrypted volume mounted there.
                out.mkdir(mode=0o700, exist_ok=True)
                written = reader.unpack(zf, meta, out)
                log = reader.read_log(zf, meta)
                answer = {"ok": True, "bytes": written,
                          "log": base64.b64encode(log).decode()}
    except BadBackup as exc:
        answer = {"ok": False, "error": "BadBackup", "message": str(exc)}
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            answer = {"ok": False, "error": "StorageFull",
                      "message": "The disk filled up while the backup was restored."}
        else:
            answer = {"ok": False, "error": "BadBackup",
                      "message": f"The backup could not be unpacked: {exc.strerror}."}
    print(json.dumps(answer))
    return 0 if answer["ok"] else 1


if __name__ == "__main__":  # pragma: no cover - runs inside the sandbox
    sys.exit(worker(sys.argv[1:]))
