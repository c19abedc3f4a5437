#!/usr/bin/env bash
# Build the TiddlyWiki package (see docs/developing/tiddlywiki.md).
# Usage: apps/tiddlywiki/build.sh KEY_FILE OUT.spk [BUILD_DIR]
#   KEY_FILE   the app's signing key (`sandhaven keygen`); never committed
#   BUILD_DIR  where the package tree is assembled (default apps/tiddlywiki/build);
#              a tree that already holds the pinned TiddlyWiki is reused.
# Environment: SANDHAVEN (default: sandhaven on PATH), NPM (default: npm).
set -euo pipefail

TIDDLYWIKI_VERSION=5.3.8

here="$(cd "$(dirname "$0")" && pwd)"
key="${1:?usage: build.sh KEY_FILE OUT.spk [BUILD_DIR]}"
out="${2:?usage: build.sh KEY_FILE OUT.spk [BUILD_DIR]}"
build="${3:-$here/build}"
sandhaven="${SANDHAVEN:-sandhaven}"
npm="${NPM:-npm}"

mkdir -p "$build"
tree="$build/tree"

# TiddlyWiki from npm, pinned; no install scripts (it has none, and none may run).
installed="$(node -p "require('$tree/node_modules/tiddlywiki/package.json').version" \
  2>/dev/null || true)"
if [[ "$installed" != "$TIDDLYWIKI_VERSION" ]]; then
  rm -rf "$tree"
  mkdir -p "$tree"
  printf '{"name": "sandhaven-tiddlywiki", "private": true}\n' > "$tree/package.json"
  (cd "$tree" && "$npm" install --omit=dev --ignore-scripts --no-audit --no-fund \
    --no-save --loglevel=error "tiddlywiki@$TIDDLYWIKI_VERSION")
fi

# The launcher glue, icons and package definition next to it.
cp "$here/sandhaven-pkgdef.toml" "$here/launcher.js" "$tree/"
rm -rf "$tree/icons"
cp -r "$here/icons" "$tree/icons"

"$sandhaven" pack "$tree" -k "$key" -o "$out"
