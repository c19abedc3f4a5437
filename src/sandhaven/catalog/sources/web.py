"""A catalog on a web server: any static server over HTTP or HTTPS.

httpx (already a dependency of the server) gives streaming bodies, timeouts on
connect and on every read, and TLS verification by default. Redirects are not
followed: a catalog's files are where its URL says.
"""

from __future__ import annotations

from typing import BinaryIO

import httpx

from sandhaven.catalog.sources import check_path, too_large
from sandhaven.errors import CatalogError

# Seconds: to connect, and between two reads of a response (not the whole download).
TIMEOUT = httpx.Timeout(30.0, connect=10.0)


class WebSource:
    """Reads files at ``base_url/<path>``."""

    def __init__(self, base_url: str, timeout: httpx.Timeout = TIMEOUT) -> None:
        self.base_url = base_url.rstrip("/")
        self.location = self.base_url
        self.timeout = timeout

    def fetch(self, path: str, out: BinaryIO, limit: int) -> int:
        url = f"{self.base_url}/{check_path(path)}"
        try:
            with httpx.Client(timeout=self.timeout, follow_redirects=False) as client, \
                    client.stream("GET", url, headers={"Accept-Encoding": "identity"}) as r:
                if r.status_code != 200:
                    raise CatalogError(f"The catalog at {self.base_url} answered HTTP "
                                       f"{r.status_code} for '{path}'.")
                declared = r.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > limit:
                    raise too_large(path, limit)
                size = 0
                for chunk in r.iter_raw():
                    size += len(chunk)
                    if size > limit:
                        raise too_large(path, limit)
                    out.write(chunk)
        except httpx.TimeoutException:
            raise CatalogError(f"The catalog at {self.base_url} did not answer in time "
                               f"for '{path}'.") from None
        except httpx.HTTPError as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise CatalogError(f"The catalog at {self.base_url} cannot be reached: "
                               f"{reason}.") from None
        return size
