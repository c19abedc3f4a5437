"""Passphrase encryption of backup files in a standard format: OpenPGP
symmetric encryption (RFC 4880: AES-256, iterated and salted SHA-512 S2K), made
and opened by GnuPG, so that ``gpg --decrypt FILE`` opens a backup without
Sandhaven. GnuPG was chosen over age because age's tool reads passphrases only
from a terminal and its Python binding encrypts with a passphrase only in memory,
while backups are gigabytes; gpg streams from file to file.

Each call runs ``gpg`` with a fresh, private home directory (removed after) and
hands it the passphrase through a pipe, never on its command line.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from typing import BinaryIO

import structlog

from sandhaven.errors import BadBackup, SandhavenError

log = structlog.get_logger("sandhaven.backup")

#: The first byte of an OpenPGP message made by ``encrypt``: a symmetric-key
#: encrypted session key packet (tag 3) in the old (0x8c) or new (0xc3) format.
OPENPGP_FIRST = (0x8C, 0xC3)
MIN_PASSPHRASE = 8
S2K_COUNT = "65011712"  # GnuPG's largest iteration count: slows guessing the most


def is_encrypted(f: BinaryIO) -> bool:
    """True when the file (a real file, read from its start) looks like an OpenPGP
    message rather than a zip."""
    first = os.pread(f.fileno(), 1, 0)  # the fd itself: gpg and the worker read it
    return bool(first) and first[0] in OPENPGP_FIRST


def check_passphrase(passphrase: str) -> str:
    """The passphrase, if usable. Raises InvalidInput-class BadBackup when it is too
    short or holds a line break (gpg reads one line)."""
    if len(passphrase) < MIN_PASSPHRASE:
        raise BadBackup(f"The passphrase must have at least {MIN_PASSPHRASE} characters.")
    if "\n" in passphrase or "\r" in passphrase or "\0" in passphrase:
        raise BadBackup("The passphrase cannot hold a line break.")
    return passphrase


def encrypt(src: BinaryIO, dst: BinaryIO, passphrase: str) -> None:
    """Encrypt the file ``src`` (from its start) into ``dst`` (at its position).
    Raises BadBackup for a bad passphrase, SandhavenError when gpg is missing or
    fails."""
    _gpg(["--symmetric", "--cipher-algo", "AES256", "--s2k-mode", "3",
          "--s2k-digest-algo", "SHA512", "--s2k-count", S2K_COUNT, "--compress-algo", "none"],
         src, dst, check_passphrase(passphrase))


def decrypt(src: BinaryIO, dst: BinaryIO, passphrase: str) -> None:
    """Decrypt the OpenPGP file ``src`` (from its start) into ``dst``. Raises BadBackup when the
    passphrase does not open it or the file is damaged."""
    try:
        _gpg(["--decrypt"], src, dst, passphrase)
    except _GpgFailed as exc:
        if "bad session key" in exc.stderr.lower():
            raise BadBackup("The passphrase does not open this backup (or it is damaged)."
                            ) from None
        # gpg's own words ("block_filter: 1st length byte missing", "exit 2") say
        # nothing to a person; they go to the log, the person gets what it means.
        log.info("backup_decrypt_failed", gpg=exc.detail)
        raise BadBackup("The encrypted backup is damaged or incomplete: it cannot be "
                        "decrypted.") from None


class _GpgFailed(SandhavenError):
    def __init__(self, detail: str, stderr: str) -> None:
        super().__init__(f"gpg failed: {detail}")
        self.detail, self.stderr = detail, stderr


def _gpg(args: list[str], src: BinaryIO, dst: BinaryIO, passphrase: str) -> None:
    gpg = shutil.which("gpg")
    if gpg is None:
        raise SandhavenError("gpg is not installed; encrypted backups need it "
                             "(Debian package gpg).")
    src.flush()
    dst.flush()
    # gpg reads the descriptor, not Python's buffer: start it at the file's start.
    os.lseek(src.fileno(), 0, os.SEEK_SET)
    home = tempfile.mkdtemp(prefix="sandhaven-gpg-")
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, passphrase.encode() + b"\n")
        os.close(write_end)
        write_end = -1
        done = subprocess.run(
            [gpg, "--homedir", home, "--batch", "--yes", "--no-tty", "--quiet",
             "--pinentry-mode", "loopback", "--passphrase-fd", str(read_end), *args],
            stdin=src, stdout=dst, stderr=subprocess.PIPE, pass_fds=(read_end,),
            timeout=24 * 3600)
    finally:
        os.close(read_end)
        if write_end != -1:
            os.close(write_end)
        subprocess.run(["gpgconf", "--homedir", home, "--kill", "all"],
                       capture_output=True, check=False)
        shutil.rmtree(home, ignore_errors=True)
    if done.returncode != 0:
        text = done.stderr.decode(errors="replace").strip()
        lines = text.splitlines()
        raise _GpgFailed((lines[-1] if lines else f"exit {done.returncode}")[:200], text)
