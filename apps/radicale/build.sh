#!/usr/bin/env bash
# Build the Radicale package (see docs/developing/radicale.md).
# Usage: apps/radicale/build.sh KEY_FILE OUT.spk [BUILD_DIR]
#   KEY_FILE   the app's signing key (`sandhaven keygen`); never committed
#   BUILD_DIR  where the package tree is assembled (default apps/radicale/build);
#              a tree that already holds the pinned Radicale is reused.
# Environment: SANDHAVEN (default: sandhaven on PATH).
set -euo pipefail

RADICALE_VERSION=3.9.0
# Debian's interpreter: the only Python a grain sees (the host's /usr).
PYTHON=/usr/bin/python3

here="$(cd "$(dirname "$0")" && pwd)"
key="${1:?usage: build.sh KEY_FILE OUT.spk [BUILD_DIR]}"
out="${2:?usage: build.sh KEY_FILE OUT.spk [BUILD_DIR]}"
build="${3:-$here/build}"
sandhaven="${SANDHAVEN:-sandhaven}"

mkdir -p "$build"
tree="$build/tree"

# Radicale and its dependencies from PyPI, pinned, installed for Debian's Python
# into tree/lib (no virtual environment: its bin/python would be a symlink out of
# the package). A pip of that same interpreter picks wheels matching it.
installed="$(PYTHONPATH="$tree/lib" "$PYTHON" -c \
  'import importlib.metadata as m; print(m.version("radicale"))' 2>/dev/null || true)"
if [[ "$installed" != "$RADICALE_VERSION" ]]; then
  rm -rf "$tree" "$build/pip"
  mkdir -p "$tree"
  "$PYTHON" -m venv "$build/pip"
  "$build/pip/bin/pip" install --quiet --disable-pip-version-check --no-compile \
    --target "$tree/lib" "radicale==$RADICALE_VERSION"
  # Console scripts carry the build path in their first line; nothing runs them.
  rm -rf "$tree/lib/bin" "$tree/lib/radicale/tests"
  # The package tree is read-only in a grain: compile every module now, checked by
  # hash rather than mtime so that unpacking cannot make the bytecode stale.
  "$PYTHON" -m compileall -q -j 0 --invalidation-mode unchecked-hash \
    -s "$tree" -p /opt/app "$tree/lib"
fi

# The launcher glue, icons and package definition next to it.
cp "$here/sandhaven-pkgdef.toml" "$here/launcher.py" "$tree/"
rm -rf "$tree/icons"
cp -r "$here/icons" "$tree/icons"

"$sandhaven" pack "$tree" -k "$key" -o "$out"
