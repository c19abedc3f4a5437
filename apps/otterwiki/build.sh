#!/usr/bin/env bash
# Build the An Otter Wiki package (see docs/developing/otterwiki.md).
# Usage: apps/otterwiki/build.sh KEY_FILE OUT.spk [BUILD_DIR]
#   KEY_FILE   the app's signing key (`sandhaven keygen`); never committed
#   BUILD_DIR  where the package tree is assembled (default apps/otterwiki/build);
#              a tree that already holds the pinned versions is reused.
# Environment: SANDHAVEN (default: sandhaven on PATH).
set -euo pipefail

OTTERWIKI_VERSION=2.26.1
GUNICORN_VERSION=27.0.1
# The grain runs Debian's Python: libraries (and compiled extensions) must fit it.
PYTHON=/usr/bin/python3

here="$(cd "$(dirname "$0")" && pwd)"
key="${1:?usage: build.sh KEY_FILE OUT.spk [BUILD_DIR]}"
out="${2:?usage: build.sh KEY_FILE OUT.spk [BUILD_DIR]}"
build="${3:-$here/build}"
sandhaven="${SANDHAVEN:-sandhaven}"

mkdir -p "$build"
tree="$build/tree"
pins="otterwiki==$OTTERWIKI_VERSION gunicorn==$GUNICORN_VERSION"

# An Otter Wiki and gunicorn from PyPI, pinned, into lib/ (no virtual environment:
# its bin/python would be a symlink out of the package). Bytecode is compiled
# here with unchecked hashes, since the grain cannot write __pycache__ into the
# read-only package and packing does not keep source timestamps meaningful.
if [[ "$(cat "$tree/.pins" 2>/dev/null || true)" != "$pins" ]]; then
  rm -rf "$tree"
  mkdir -p "$tree"
  # shellcheck disable=SC2086
  "$PYTHON" -m pip install --quiet --disable-pip-version-check --no-compile \
    --no-warn-script-location --root-user-action=ignore --target "$tree/lib" $pins
  rm -rf "$tree/lib/bin"
  "$PYTHON" -m compileall -q -j 0 --invalidation-mode unchecked-hash "$tree/lib"
  printf '%s' "$pins" > "$tree/.pins"
fi

# The glue, its bytecode, the package definition and upstream's icons (MIT).
cp "$here/sandhaven-pkgdef.toml" "$here/launcher.py" "$here/sandhaven_otterwiki.py" "$tree/"
"$PYTHON" -m compileall -q --invalidation-mode unchecked-hash \
  "$tree/launcher.py" "$tree/sandhaven_otterwiki.py"
rm -rf "$tree/icons"
mkdir -p "$tree/icons"
img="$tree/lib/otterwiki/static/img"
cp "$img/otterhead-up-192.png" "$tree/icons/otterwiki-192.png"
cp "$img/otter-favicon2.png" "$tree/icons/otterwiki-32.png"

"$sandhaven" pack "$tree" -k "$key" -o "$out"
