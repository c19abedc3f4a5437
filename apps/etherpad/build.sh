#!/usr/bin/env bash
# Build the Etherpad package (see docs/developing/etherpad.md).
# Usage: apps/etherpad/build.sh KEY_FILE OUT.spk [BUILD_DIR]
#   KEY_FILE   the app's signing key (`sandhaven keygen`); never committed
#   BUILD_DIR  where the package tree is assembled (default apps/etherpad/build);
#              a tree that already holds the pinned Etherpad is reused.
# Environment: SANDHAVEN (default: sandhaven on PATH), NPM (default: npm).
set -euo pipefail

# The only version of ep_etherpad-lite on the npm registry.
ETHERPAD_VERSION=1.8.14
SQLITE3_OVERRIDE=6.0.1

here="$(cd "$(dirname "$0")" && pwd)"
key="${1:?usage: build.sh KEY_FILE OUT.spk [BUILD_DIR]}"
out="${2:?usage: build.sh KEY_FILE OUT.spk [BUILD_DIR]}"
build="${3:-$here/build}"
sandhaven="${SANDHAVEN:-sandhaven}"
npm="${NPM:-npm}"

mkdir -p "$build"
tree="$build/tree"

# Etherpad from npm, pinned, laid out as Etherpad expects to live: its package
# in etherpad/src (it finds its base directory as the parent of `src`) with its
# dependencies in etherpad/src/node_modules (it serves some of them to browsers
# from there), and etherpad/node_modules/ep_etherpad-lite linking back to src
# (its plugin hooks are named `ep_etherpad-lite/...`). No install scripts run:
# Etherpad's and its dependencies' are not needed.
# ueberdb2 names its optional sqlite3 driver by a GitHub commit, which cannot be
# fetched here (npm waits minutes for it): the override points it at the
# registry, and optional packages are left out (a grain uses dirty.db).
installed="$(node -p "require('$tree/etherpad/src/package.json').version" \
  2>/dev/null || true)"
if [[ "$installed" != "$ETHERPAD_VERSION" ]]; then
  rm -rf "$tree" "$build/stage"
  stage="$build/stage/etherpad"
  mkdir -p "$stage"
  printf '{"name": "sandhaven-etherpad", "private": true, "overrides": {"sqlite3": "%s"}}\n' \
    "$SQLITE3_OVERRIDE" > "$stage/package.json"
  (cd "$stage" && "$npm" install --omit=dev --omit=optional --ignore-scripts --prefer-offline \
    --no-audit --no-fund --no-save --loglevel=error "ep_etherpad-lite@$ETHERPAD_VERSION")
  node "$here/prune.js" "$stage/node_modules"
  rm "$stage/package.json"
  mv "$stage/node_modules/ep_etherpad-lite" "$stage/src"
  if [[ -e "$stage/src/node_modules" ]]; then
    echo "build.sh: npm nested packages under ep_etherpad-lite; the layout needs one folder" >&2
    exit 1
  fi
  mv "$stage/node_modules" "$stage/src/node_modules"
  mkdir "$stage/node_modules"
  ln -s ../src "$stage/node_modules/ep_etherpad-lite"
  # Etherpad marks a plugin initialised by writing this file into its folder,
  # which is read-only in a grain.
  printf 'done' > "$stage/src/.ep_initialized"
  mkdir -p "$tree"
  mv "$stage" "$tree/etherpad"
  rm -rf "$build/stage"
fi

# The launcher glue, icons and package definition next to it.
cp "$here/sandhaven-pkgdef.toml" "$here/launcher.js" "$here/front.js" "$tree/"
rm -rf "$tree/icons"
cp -r "$here/icons" "$tree/icons"

"$sandhaven" pack "$tree" -k "$key" -o "$out"
