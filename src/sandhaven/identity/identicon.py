"""Default user pictures: a 5×5 mirrored identicon drawn from a hash, as SVG.

compat.md: ``X-Sandstorm-User-Picture`` is "an identicon by default". The URL
names a hash of the user's ID, not the ID itself, so it reveals nothing.
"""

from __future__ import annotations

import hashlib


def identicon_key(user_id: str) -> str:
    """The 32 hex that name a user's identicon."""
    return hashlib.sha256(f"identicon:{user_id}".encode()).hexdigest()[:32]


def identicon_svg(key: str) -> str:
    """An SVG identicon for 32 hex characters ``key`` (same key, same picture)."""
    digest = hashlib.sha256(key.encode()).digest()
    hue = digest[0] * 360 // 256
    color = f"hsl({hue},55%,50%)"
    cells = []
    for row in range(5):
        for col in range(3):
            if digest[1 + row * 3 + col] & 1:
                for x in {col, 4 - col}:
                    cells.append(f'<rect x="{x + 1}" y="{row + 1}" width="1" height="1"/>')
    return ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 7 7" width="128" '
            f'height="128"><rect width="7" height="7" fill="#f3f4f6"/><g fill="{color}">'
            + "".join(cells) + "</g></svg>")
