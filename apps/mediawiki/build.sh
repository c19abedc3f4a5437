#!/usr/bin/env bash
# Build the MediaWiki package (see docs/developing/mediawiki.md).
# Usage: apps/mediawiki/build.sh KEY_FILE OUT.spk [BUILD_DIR]
#   KEY_FILE   the app's signing key (`sandhaven keygen`); never committed
#   BUILD_DIR  where the package tree is assembled (default apps/mediawiki/build)
# Environment: SANDHAVEN (default: sandhaven on PATH).
#
# The package holds only the glue: MediaWiki itself (284 MB) is Debian 12's
# `mediawiki` package on the server (scripts/apt-packages.txt), read from the
# host's /usr inside the grain; launcher.sh refuses to start without it.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
key="${1:?usage: build.sh KEY_FILE OUT.spk [BUILD_DIR]}"
out="${2:?usage: build.sh KEY_FILE OUT.spk [BUILD_DIR]}"
build="${3:-$here/build}"
sandhaven="${SANDHAVEN:-sandhaven}"

tree="$build/tree"
rm -rf "$tree"
mkdir -p "$tree"
cp "$here/sandhaven-pkgdef.toml" "$here/launcher.sh" "$here/router.php" \
  "$here/LocalSettings.php" "$tree/"
cp -R "$here/sandhaven" "$here/icons" "$tree/"
chmod -R u+rwX,go+rX,go-w "$tree"

"$sandhaven" pack "$tree" -k "$key" -o "$out"
