"""Encryption at rest (DESIGN.md "Storage and encryption at rest").

Key hierarchy: the key-encryption key (KEK, :mod:`.kek`) wraps one random
password per gocryptfs volume (:mod:`.wrapped`); each grain has its own volume
(:mod:`.volumes`) and the server has one for its store, grain logs and temporary
files (:mod:`.private`). ``keys rotate`` (:mod:`.rotate`) re-wraps the passwords
under a new KEK without touching the data. Formats: docs/reference/key-files.md.
"""

from sandhaven.encryption.kek import Kek
from sandhaven.encryption.private import Storage, open_storage
from sandhaven.encryption.volumes import GrainVolumes

__all__ = ["GrainVolumes", "Kek", "Storage", "open_storage"]
