"""The KEK key file and key wrapping (sandhaven.encryption.kek, .wrapped)."""

from __future__ import annotations

import json

import pytest

from sandhaven.encryption import wrapped
from sandhaven.encryption.kek import Kek, needs_passphrase, read_key_file, write_key_file
from sandhaven.errors import EncryptionError


def test_key_file_round_trip_is_0600_and_names_the_key(tmp_path):
    kek = Kek.generate()
    path = tmp_path / "keys" / "kek"
    write_key_file(path, kek)
    assert path.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "keys").stat().st_mode & 0o777 == 0o700
    assert read_key_file(path) == kek and not needs_passphrase(path)
    assert "key=" not in repr(kek)


@pytest.mark.parametrize("damage, message", [
    (lambda d: d.update(key=d["key"][:-4] + "AAA="), "does not match its ID"),
    (lambda d: d.update(format="other"), "not a Sandhaven KEK file"),
    (lambda d: d.pop("key"), "fields missing or malformed"),
    (lambda d: d.update(version=9), "version 9"),
])
def test_a_damaged_key_file_is_refused_in_one_line(tmp_path, damage, message):
    path = tmp_path / "kek"
    write_key_file(path, Kek.generate())
    doc = json.loads(path.read_text())
    damage(doc)
    path.write_text(json.dumps(doc))
    with pytest.raises(EncryptionError, match=message) as err:
        read_key_file(path)
    assert "\n" not in str(err.value)


def test_not_json_missing_and_unsafe_modes_are_refused(tmp_path):
    path = tmp_path / "kek"
    with pytest.raises(EncryptionError, match="is missing"):
        read_key_file(path)
    path.write_bytes(b"\x00garbage")
    path.chmod(0o600)
    with pytest.raises(EncryptionError, match="damaged \\(not JSON\\)"):
        read_key_file(path)
    write_key_file(path, Kek.generate())
    path.chmod(0o644)
    with pytest.raises(EncryptionError, match="chmod 600"):
        read_key_file(path)


def test_passphrase_sealed_key_opens_only_with_the_passphrase(tmp_path):
    kek = Kek.generate()
    path = tmp_path / "kek"
    write_key_file(path, kek, "correct horse")
    assert needs_passphrase(path)
    assert kek.key.hex() not in path.read_text()
    with pytest.raises(EncryptionError, match="sealed by a passphrase"):
        read_key_file(path)
    with pytest.raises(EncryptionError, match="^Wrong passphrase.$"):
        read_key_file(path, "wrong horse")
    assert read_key_file(path, "correct horse") == kek


def test_a_wrap_opens_only_with_its_kek_and_its_label(tmp_path):
    kek, other = Kek.generate(), Kek.generate()
    record = tmp_path / "key"
    password = wrapped.new_password()
    wrapped.create(record, "grain:a", password, kek)
    assert wrapped.unwrap(record, "grain:a", kek) == password
    with pytest.raises(EncryptionError, match="not wrapped by the current KEK"):
        wrapped.unwrap(record, "grain:a", other)
    with pytest.raises(EncryptionError, match="damaged"):
        wrapped.unwrap(record, "grain:b", kek)  # a record moved onto another grain
    blob = kek.wrap(password, "grain:a")
    with pytest.raises(EncryptionError, match="does not open"):
        kek.unwrap(blob, "grain:b")
    wrapped.add_wrap(record, "grain:a", kek, other)
    assert wrapped.unwrap(record, "grain:a", other) == password
    wrapped.keep_only(record, "grain:a", other)
    assert set(wrapped.read_wraps(record, "grain:a")) == {other.id}
    wrapped.shred(record)
    assert not record.exists()
