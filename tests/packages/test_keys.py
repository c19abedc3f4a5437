import os
import stat

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sandhaven.errors import KeyFileError
from sandhaven.packages.keys import SigningKey, read_key_file, write_key_file


def test_write_then_read(tmp_path):
    key = SigningKey.generate()
    path = tmp_path / "app.key"
    write_key_file(key, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = read_key_file(path)
    assert again.app_id == key.app_id
    assert again.sign(b"x") == key.sign(b"x")  # Ed25519 is deterministic


def test_never_overwrites(tmp_path):
    path = tmp_path / "app.key"
    path.write_text("precious")
    with pytest.raises(KeyFileError, match="already exists"):
        write_key_file(SigningKey.generate(), path)
    assert path.read_text() == "precious"


def test_group_readable_key_is_refused(tmp_path):
    path = tmp_path / "app.key"
    write_key_file(SigningKey.generate(), path)
    os.chmod(path, 0o640)
    with pytest.raises(KeyFileError, match="chmod 600"):
        read_key_file(path)


def test_missing_garbage_and_wrong_type(tmp_path):
    with pytest.raises(KeyFileError, match="cannot be opened"):
        read_key_file(tmp_path / "nope.key")
    garbage = tmp_path / "garbage.key"
    garbage.write_bytes(b"not a key")
    garbage.chmod(0o600)
    with pytest.raises(KeyFileError, match="PEM"):
        read_key_file(garbage)
    ecdsa = tmp_path / "ec.key"
    ecdsa.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    ecdsa.chmod(0o600)
    with pytest.raises(KeyFileError, match="not Ed25519"):
        read_key_file(ecdsa)


def test_symlinked_key_is_refused(tmp_path):
    real = tmp_path / "real.key"
    write_key_file(SigningKey.generate(), real)
    link = tmp_path / "link.key"
    link.symlink_to(real)
    with pytest.raises(KeyFileError, match="cannot be opened"):
        read_key_file(link)


def test_repr_hides_the_private_key():
    key = SigningKey.generate()
    assert repr(key) == f"SigningKey(app_id={key.app_id!r})"
