import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandhaven.packages.ids import (
    ALPHABET,
    app_id_from_public_key,
    base32_decode,
    base32_encode,
    is_app_id,
    is_package_id,
    package_id_from_digest,
    public_key_from_app_id,
)
from sandhaven.packages.keys import SigningKey


def test_alphabet_is_sandstorms():
    assert ALPHABET == "0123456789acdefghjkmnpqrstuvwxyz"
    assert not set("bilo") & set(ALPHABET)


def test_known_vectors():
    # Bits are taken most significant first, as Sandstorm's base32Encode does.
    assert app_id_from_public_key(bytes(32)) == "0" * 52
    assert app_id_from_public_key(bytes(range(32))) == \
        "000h40s40n30f209185hs38f1w8124hm2hajd5ss34e1q70x3sgh"
    assert base32_encode(b"\xff") == "zw"


def test_same_bits_as_rfc4648_with_another_alphabet():
    data = bytes(range(100, 132))
    rfc = base64.b32encode(data).decode().rstrip("=")
    ours = base32_encode(data)
    assert [ALPHABET.index(c) for c in ours] == \
        ["ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".index(c) for c in rfc]


@given(st.binary(min_size=32, max_size=32))
def test_app_id_round_trip(key):
    app_id = app_id_from_public_key(key)
    assert len(app_id) == 52 and set(app_id) <= set(ALPHABET)
    assert public_key_from_app_id(app_id) == key
    assert is_app_id(app_id)


@pytest.mark.parametrize("text", [
    "0" * 51, "0" * 53, "B" + "0" * 51, "b" + "0" * 51, "i" + "0" * 51,
    "0" * 51 + "1",  # last character carries 4 padding bits that must be zero
    "0" * 51 + "Z",
])
def test_malformed_app_ids_are_refused(text):
    assert not is_app_id(text)
    with pytest.raises(ValueError):
        public_key_from_app_id(text)


def test_base32_decode_refuses_non_canonical():
    with pytest.raises(ValueError):
        base32_decode("zz")  # 10 bits for one byte: the 2 spare bits are set
    assert base32_decode("zw") == b"\xff"


def test_real_key_gives_52_character_app_id():
    key = SigningKey.generate()
    assert len(key.app_id) == 52
    assert public_key_from_app_id(key.app_id) == key.public_key


def test_package_id_shape():
    assert package_id_from_digest(bytes(range(32))) == bytes(range(16)).hex()
    assert is_package_id("0" * 32)
    assert not is_package_id("0" * 31)
    assert not is_package_id("A" * 32)
