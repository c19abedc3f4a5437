#!/usr/bin/env bash
# Build the EtherCalc package (see docs/developing/ethercalc.md).
# Usage: apps/ethercalc/build.sh KEY_FILE OUT.spk [BUILD_DIR]
#   KEY_FILE   the app's signing key (`sandhaven keygen`); never committed
#   BUILD_DIR  where the package tree is assembled (default apps/ethercalc/build);
#              a tree installed from the same package.json and lock file is reused.
# Environment: SANDHAVEN (default: sandhaven on PATH), NPM (default: npm).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
key="${1:?usage: build.sh KEY_FILE OUT.spk [BUILD_DIR]}"
out="${2:?usage: build.sh KEY_FILE OUT.spk [BUILD_DIR]}"
build="${3:-$here/build}"
sandhaven="${SANDHAVEN:-sandhaven}"
npm="${NPM:-npm}"

mkdir -p "$build"
tree="$build/tree"

# EtherCalc from npm, every version pinned by package-lock.json; package.json's
# overrides replace the three GitHub tarballs that old socket.io asks for with
# registry packages. "shallow" nests all dependencies under node_modules/ethercalc,
# where EtherCalc looks for its files (node_modules/socialcalc). No install
# scripts run; the optional webworker-threads (a native addon) is left out, so
# EtherCalc uses its vm backend.
if ! { cmp -s "$here/package.json" "$tree/package.json" \
       && cmp -s "$here/package-lock.json" "$tree/package-lock.json" \
       && [[ -f "$tree/node_modules/ethercalc/main.js" ]]; }; then
  rm -rf "$tree"
  mkdir -p "$tree"
  cp "$here/package.json" "$here/package-lock.json" "$tree/"
  (cd "$tree" && "$npm" ci --omit=dev --omit=optional --ignore-scripts --no-audit --no-fund \
    --install-strategy=shallow --loglevel=error)
fi

# The launcher glue, icons and package definition next to it.
cp "$here/sandhaven-pkgdef.toml" "$here/launcher.js" "$here/empty-sheet.sc" "$tree/"
rm -rf "$tree/icons"
cp -r "$here/icons" "$tree/icons"

"$sandhaven" pack "$tree" -k "$key" -o "$out"
